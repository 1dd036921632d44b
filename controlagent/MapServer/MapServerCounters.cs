namespace FastXtr.ControlAgent.MapServer;

/// <summary>What the Map-Server counts; every refused message is counted under its reason.</summary>
public enum MsCounter
{
    MessagesReceived,
    MapRegistersAccepted,
    MapNotifiesSent,
    MapNotifyAcksReceived,
    MapRequestsReceived,
    MapRepliesSent,
    NegativeRepliesSent,
    PolicyDeniedRepliesSent,
    MapRequestsForwarded,
    ConstraintsReceived,
    ConstraintsMalformed,
    ConstraintKeysUnknown,
    AttributeUpdatesInPlace,
    RegistrationsExpired,
    RegistrationsWithdrawn,
    SubscriptionsAccepted,
    SubscriptionsRefused,
    SubscriptionsDropped,
    PublicationsSent,
    MoveNotifiesSent,
    NotifyRetransmissions,
    // Refusals.
    MalformedMessage,
    UnsupportedMessageType,
    RateLimitedMapRequest,
    RateLimitedMapRegister,
    RegisterAuthenticationFailed,
    RegisterNoSiteForEid,
    RegisterForeignPrefix,
    RegisterInvalidAttributes,
    RegisterNoRlocs,
    /// <summary>Records whose map-version is older than the one registered or withdrawn moments before (reordering).</summary>
    RegisterStaleVersion,
    MapNotifyAckAuthenticationFailed,
    /// <summary>Map-Registers that asked for a Map-Notify but had no record registered: nothing to confirm.</summary>
    MapNotifiesWithheld,
    MapRequestNoEidRecord,
    RepliesNotSent,
    Count,
}

public sealed class MapServerCounters
{
    private readonly long[] _values = new long[(int)MsCounter.Count];

    public void Add(MsCounter c, long n = 1) => Interlocked.Add(ref _values[(int)c], n);

    public long this[MsCounter c] => Volatile.Read(ref _values[(int)c]);

    public static string Name(MsCounter c) => Dataplane.Shared.WorkerCounters.Kebab(c.ToString());

    public Dictionary<string, long> ToDictionary() =>
        Enum.GetValues<MsCounter>().Where(c => c != MsCounter.Count).ToDictionary(Name, c => this[c]);
}
