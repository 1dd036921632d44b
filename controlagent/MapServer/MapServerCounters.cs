namespace FastXtr.MapServer;

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
    /// <summary>Configurations re-read and applied (SIGHUP).</summary>
    ConfigReloads,
    /// <summary>Re-read configurations refused (they did not parse); the running one stayed.</summary>
    ConfigReloadsRefused,
    /// <summary>Registered prefixes removed by a reload: their site is gone or no longer holds them.</summary>
    RegistrationsRemovedByReload,
    /// <summary>LISP-DDT (RFC 8111): Map-Requests from a DDT Map-Resolver (ECM with the D bit), and the Map-Referrals
    /// answering them, by action.</summary>
    DdtMapRequestsReceived,
    MapReferralsSent,
    ReferralsMapServerAck,
    ReferralsMapServerNotRegistered,
    ReferralsDelegation,
    ReferralsDelegationHole,
    ReferralsNotAuthoritative,
    /// <summary>DDT Map-Resolver (ddt-root): ITR requests resolved through the tree, the DDT Map-Requests sent and
    /// the Map-Referrals taken, how each walk ended, and what was refused.</summary>
    DdtRequestsStarted,
    DdtMapRequestsSent,
    DdtReferralsReceived,
    DdtResolvedByMapServer,
    DdtNegativeRepliesSent,
    DdtAnsweredFromCache,
    DdtNotAuthoritative,
    DdtRequestTimeouts,
    DdtTargetsMarkedDown,
    DdtTargetsUp,
    DdtRequestsAbandoned,
    DdtReferralLoops,
    DdtReferralsUnexpected,
    DdtRequestsRetransmitted,
    DdtRequestsRefused,
    /// <summary>DDT Map-Requests a batched send could not hand to the kernel (a full socket buffer after a wait, or refused).</summary>
    DdtMapRequestsNotSent,
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
    /// <summary>Map-Notify-Acks that match no notification awaiting one (by nonce and first record): a duplicate, one
    /// for a notification given up or superseded, or one without the notification's records.</summary>
    MapNotifyAcksUnmatched,
    /// <summary>Map-Registers that asked for a Map-Notify but had no record registered: nothing to confirm.</summary>
    MapNotifiesWithheld,
    MapRequestNoEidRecord,
    RepliesNotSent,
    /// <summary>NAT discovery (draft-ietf-lisp-nat-traversal §5): Info-Requests answered, and those refused.</summary>
    InfoRequestsReceived,
    InfoRepliesSent,
    RateLimitedInfoRequest,
    InfoRequestAuthenticationFailed,
    InfoRequestNoSiteForEid,
    /// <summary>RFC 9437: publications not sent again because their subscription was renewed since (the renewal's
    /// answer carries the newer state, and the ITR counts publication nonces from the renewal's on).</summary>
    PublicationsSuperseded,
    /// <summary>RFC 9437's subscribe procedure: Map-Notifies acknowledging a subscription or its renewal (under the
    /// request's nonce).</summary>
    SubscriptionAcksSent,
    Count,
}

public sealed class MapServerCounters : FastXtr.Common.CounterSet<MsCounter>;
