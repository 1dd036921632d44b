namespace FastXtr.Packets;

/// <summary>
/// Map-Reply record actions (RFC 9301 §5.4, "ACT"): what an ITR does with packets for a negative mapping. Defined
/// once here, where both the data plane's map-cache and the control-message codec see it.
/// </summary>
public enum MapReplyAction : byte
{
    NoAction = 0,
    NativelyForward = 1,
    SendMapRequest = 2,
    DropNoReason = 3,
    DropPolicyDenied = 4,
    DropAuthFailure = 5,
}
