namespace FastXtr.Agent;

/// <summary>What the control agent counts (shown by <c>GET /v1/status</c> and <c>fastxtr show agents</c>).</summary>
public enum AgentCounter
{
    MapRegistersSent,
    MapRegisterRetransmissions,
    /// <summary>Pending Map-Registers not sent again because later changes superseded every record in them.</summary>
    RegistersSuperseded,
    RegistrationsAcknowledged,
    RegistrationsUnacknowledged,
    /// <summary>Records of our Map-Registers that the Map-Notify did not confirm: the Map-Server refused them.</summary>
    RegisterRecordsRefused,
    WithdrawalsSent,
    MapRequestsSent,
    /// <summary>Misses not asked about because the agent's Map-Request rate (map-request-rate) was used up.</summary>
    MapRequestsRateLimited,
    /// <summary>Map-Requests sent again after a second without an answer (to another Map-Resolver when one is up).</summary>
    MapRequestRetransmissions,
    /// <summary>Map-Requests that waited a second without an answer (counted against the resolver that had them).</summary>
    MapResolverTimeouts,
    MapResolversMarkedDown,
    /// <summary>Map-Servers that left a Map-Register unanswered for three sends (until their next Map-Notify).</summary>
    MapServersUnresponsive,
    /// <summary>Map-Requests given up after every attempt (or with no rate left to retransmit).</summary>
    MapRequestsUnanswered,
    MapRepliesInstalled,
    NegativeRepliesInstalled,
    MapRepliesUnsolicited,
    PublicationsApplied,
    MoveNotifiesApplied,
    MapNotifyAcksSent,
    MapNotifyAuthenticationFailed,
    SmrsSent,
    SmrsReceived,
    SmrInvokedRequestsSent,
    RlocProbesSent,
    RlocProbeRepliesReceived,
    LocatorsMarkedDown,
    LocatorsMarkedUp,
    EtrRequestsAnswered,
    MalformedMessages,
    /// <summary>Miss-ring records of no known kind (a data plane of another build would be refused at attach; a
    /// defect otherwise): skipped.</summary>
    MissRecordsMalformed,
    MapCacheFull,
    RegionsFollowed,
    /// <summary>Configurations re-read and applied (SIGHUP).</summary>
    ConfigReloads,
    /// <summary>Re-read configurations refused (did not parse, or conflicted with an attached agent); the running one stayed.</summary>
    ConfigReloadsRefused,
    EntriesRestored,
    /// <summary>NAT discovery (draft-ietf-lisp-nat-traversal §5): Info-Requests sent, Info-Replies taken, and those
    /// refused (not for a nonce of ours, or not authenticated with that Map-Server's key).</summary>
    InfoRequestsSent,
    InfoRepliesReceived,
    InfoRepliesRefused,
    /// <summary>Behind NAT: Info-Requests sent to RTRs' data ports (keep-alives, and withdrawals of detached prefixes).</summary>
    NatKeepalivesSent,
    NatWithdrawalsSent,
    /// <summary>fastxtr rtr: Info-Requests from xTRs behind NAT taken (a binding learnt or refreshed), and those
    /// refused: no nat-site for the EID, failed authentication, a nonce not above the last taken for that prefix
    /// (a replay), over the per-source rate, or malformed; bindings learnt, withdrawn and expired; Map-Reply locators
    /// that were this RTR itself (an xTR behind NAT registered it), left out.</summary>
    RtrInfoRequestsTaken,
    RtrInfoRequestsNoSite,
    RtrInfoRequestsAuthenticationFailed,
    RtrInfoRequestsReplayed,
    RtrInfoRequestsRateLimited,
    RtrInfoRequestsMalformed,
    RtrBindingsLearned,
    RtrBindingsWithdrawn,
    RtrBindingsExpired,
    RtrOwnLocatorsSkipped,
    /// <summary>RFC 9437 §5: publications whose nonce was not above the last one taken for their record. Repeated:
    /// the same nonce again (a retransmission whose acknowledgement was lost), acknowledged again and not applied;
    /// replayed: an older one, dropped unacknowledged and logged.</summary>
    PublicationsRepeated,
    PublicationsReplayed,
    /// <summary>RFC 9437's subscribe procedure: Map-Notifies acknowledging one of our subscriptions (under the
    /// subscribing request's nonce), before or after its Map-Reply; each acknowledged.</summary>
    SubscriptionAcksTaken,
    Count,
}

public sealed class AgentCounters : FastXtr.Common.CounterSet<AgentCounter>;
