using FastXtr.Lisp.Messages;

namespace FastXtr.Lisp.Context;

/// <summary>
/// Where the context extension sits in LISP addresses (CONTEXT-EXTENSION.md §1, §2): an AFI-List LCAF whose first
/// item is the RLOC (or Source-EID) as it would otherwise be encoded and whose next item is a JSON LCAF with a
/// trailing AFI 0.
/// </summary>
public static class ContextEncoding
{
    /// <summary>An RLOC carrying its attributes: AFI-List(rloc, JSON(agent-context), AFI 0 trailing).</summary>
    public static LispAddress RlocWithContext(LispAddress rloc, AgentContext context) =>
        LispAddress.AfiList(rloc, LispAddress.Json(context.ToUtf8Json()));

    /// <summary>A Source-EID carrying constraints: AFI-List(source EID, JSON(agent-constraints)).</summary>
    public static LispAddress SourceEidWithConstraints(LispAddress sourceEid, AgentConstraints constraints) =>
        LispAddress.AfiList(sourceEid, LispAddress.Json(constraints.ToUtf8Json()));

    /// <summary>
    /// Splits a locator into its address and attributes. A plain address has no attributes (null, no error);
    /// an AFI-List with an invalid <c>agent-context</c> JSON returns null attributes and the reason.
    /// </summary>
    public static LispAddress ReadLocator(LispAddress locator, out AgentContext? context, out ContextError error)
    {
        context = null;
        error = ContextError.None;
        if (locator.Kind != LispAddressKind.AfiList) return locator;
        var json = locator.JsonItem;
        if (json is not null && !json.JsonBinary) context = AgentContext.TryParse(json.Data, out error);
        return locator.PlainAddress;
    }

    /// <summary>
    /// The constraints a Source-EID carries: null with no error when it carries none (a legacy ITR); null with a
    /// reason when the JSON is malformed (answer as if none were sent, and count it).
    /// </summary>
    public static AgentConstraints? ReadConstraints(LispAddress sourceEid, out ContextError error)
    {
        error = ContextError.None;
        var json = sourceEid.JsonItem;
        if (json is null) return null;
        if (json.JsonBinary) { error = new ContextError("binary JSON constraints are not supported"); return null; }
        return AgentConstraints.TryParse(json.Data, out error);
    }
}
