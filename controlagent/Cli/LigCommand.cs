using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using FastXtr.Lisp.Context;
using FastXtr.MapServer;
using FastXtr.Lisp.Messages;

namespace FastXtr.Cli;

/// <summary>
/// <c>fastxtr lig EID</c>: the LISP Internet Groper. Sends an Encapsulated Map-Request (optionally with agent
/// constraints in the Source-EID) to a Map-Resolver, waits for the Map-Reply with the same nonce, and prints it with
/// the round-trip time, retrying on silence.
/// </summary>
public static class LigCommand
{
    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var eid = new Argument<string>("eid") { Description = "the EID to look up (an IPv4 or IPv6 address)" };
        var iid = new Option<uint>("--iid") { Description = "the Instance ID", DefaultValueFactory = _ => 0 };
        var resolver = new Option<string>("--map-resolver") { Description = "the Map-Resolver, ADDRESS[:PORT]", DefaultValueFactory = _ => "127.0.0.1:4342" };
        resolver.Aliases.Add("--mr");
        var constraints = new Option<string?>("--constraints") { Description = "agent constraints as JSON, e.g. '{\"agent-constraints\":{\"hardware\":[\"gpu\"]}}' (the answer then carries attributes)" };
        var source = new Option<string?>("--source-eid") { Description = "the Source-EID to put in the request (default: none)" };
        var timeout = new Option<int>("--timeout") { Description = "milliseconds to wait for each try", DefaultValueFactory = _ => 2000 };
        var count = new Option<int>("--count") { Description = "tries before giving up", DefaultValueFactory = _ => 3 };
        var trace = new Option<bool>("--trace") { Description = "walk a LISP-DDT tree from --map-resolver (a DDT root or node): send DDT Map-Requests (ECM with the D bit) and print each Map-Referral, following NODE-REFERRAL and MS-REFERRAL to the first target by priority, until MS-ACK (then the Map-Server's Map-Reply is printed), MS-NOT-REGISTERED, DELEGATION-HOLE or NOT-AUTHORITATIVE" };
        var command = new Command("lig", "Ask a Map-Resolver for an EID's mapping and print the answer (LISP Internet Groper), optionally with agent constraints.");
        command.Arguments.Add(eid);
        foreach (var o in new Option[] { iid, resolver, constraints, source, timeout, count, trace }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            try
            {
                return Run(parse.GetValue(eid)!, parse.GetValue(iid), MapServerConfig.ParseEndpoint(parse.GetValue(resolver)!), parse.GetValue(constraints),
                    parse.GetValue(source), parse.GetValue(timeout), parse.GetValue(count), stdout, stderr, parse.GetValue(trace));
            }
            catch (FormatException e)
            {
                stderr.WriteLine($"fastxtr lig: {e.Message}");
                return Program.ExitUsage;
            }
        });
        return command;
    }

    public static int Run(string eidText, uint iid, IPEndPoint resolver, string? constraintsJson, string? sourceEid, int timeoutMs, int tries, TextWriter stdout, TextWriter stderr, bool trace = false)
    {
        if (!IPAddress.TryParse(eidText, out var eid)) throw new FormatException($"'{eidText}' is not an IPv4 or IPv6 address");
        AgentConstraints? constraints = null;
        if (constraintsJson is not null)
        {
            constraints = AgentConstraints.TryParse(constraintsJson, out var err);
            if (constraints is null) throw new FormatException($"--constraints: {err.Reason}");
        }
        // The answer may come from the resolver or, when the Map-Server forwards the request (the default of OOR,
        // Cisco and lispers.net), from the ETR itself: the socket stays unconnected and replies are matched by nonce.
        // The local address the route to the resolver uses becomes the ITR-RLOC the answer is sent to.
        IPAddress localAddress;
        using (var probe = new Socket(resolver.AddressFamily, SocketType.Dgram, ProtocolType.Udp))
        {
            probe.Connect(resolver);
            localAddress = ((IPEndPoint)probe.LocalEndPoint!).Address;
        }
        using var socket = new Socket(resolver.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(localAddress, 0));
        var local = (IPEndPoint)socket.LocalEndPoint!;
        ulong nonce = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        var request = new MapRequest { Nonce = nonce };
        LispAddress src = sourceEid is null ? LispAddress.None() : LispAddress.WithInstanceId(iid, LispAddress.Parse(sourceEid));
        request.SourceEid = constraints is null ? src : ContextEncoding.SourceEidWithConstraints(src.Kind == LispAddressKind.None ? LispAddress.WithInstanceId(iid, LispAddress.FromIp(local.Address.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any)) : src, constraints);
        request.ItrRlocs.Add(LispAddress.FromIp(local.Address));
        int mask = eid.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        request.Records.Add(new MapRequestRecord(LispAddress.WithInstanceId(iid, LispAddress.FromIp(eid)), (byte)mask));
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)local.Port, DdtOriginated = trace };
        var innerSource = local.Address.AddressFamily == eid.AddressFamily ? local.Address : (eid.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any);
        ecm.SetInnerAddresses(innerSource, eid);
        ecm.SetInnerMessage(request.ToArray());
        byte[] datagram = ecm.ToArray();
        if (trace) return Trace(socket, datagram, nonce, iid, eid, resolver, timeoutMs, tries, stdout, stderr);
        byte[] buffer = new byte[65536];
        var reply = new MapReply();
        stdout.WriteLine($"Send Map-Request to {resolver} for [{iid}]{eid}{(constraints is null ? "" : $" with {constraints}")} (nonce 0x{nonce:x16}) ...");
        for (int attempt = 1; attempt <= tries; attempt++)
        {
            var sw = Stopwatch.StartNew();
            socket.SendTo(datagram, resolver);
            while (sw.ElapsedMilliseconds < timeoutMs)
            {
                int n;
                EndPoint from = new IPEndPoint(resolver.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
                socket.ReceiveTimeout = (int)Math.Max(1, timeoutMs - sw.ElapsedMilliseconds);
                try { n = socket.ReceiveFrom(buffer, ref from); }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock) { break; }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused) { continue; }
                if (LispMessage.PeekType(buffer.AsSpan(0, n)) != LispMessageType.MapReply || !reply.TryDecode(buffer.AsSpan(0, n)).Ok || reply.Nonce != nonce) continue;
                var sender = (IPEndPoint)from;
                string via = sender.Address.Equals(resolver.Address) ? "" : $" (the ETR answered; the request went through {resolver})";
                stdout.WriteLine($"Received Map-Reply from {sender.Address}{via} in {sw.Elapsed.TotalMilliseconds:F2} ms:");
                foreach (var rec in reply.Records) Print(rec, stdout);
                return 0;
            }
            stdout.WriteLine($"  no answer within {timeoutMs} ms (try {attempt} of {tries})");
        }
        stderr.WriteLine($"fastxtr lig: no Map-Reply from {resolver}");
        return 1;
    }

    /// <summary>
    /// <c>lig --trace</c>: the walk a DDT Map-Resolver makes (RFC 8111), hop by hop, with the same loop guard (each
    /// referral more specific than the one before, at most 16).
    /// </summary>
    private static int Trace(Socket socket, byte[] datagram, ulong nonce, uint iid, IPAddress eid, IPEndPoint start, int timeoutMs, int tries, TextWriter stdout, TextWriter stderr)
    {
        var target = start;
        int lastLength = -1;
        var referral = new MapReferral();
        var reply = new MapReply();
        byte[] buffer = new byte[65536];
        stdout.WriteLine($"Trace [{iid}]{eid} through the DDT tree from {start} (nonce 0x{nonce:x16}):");
        for (int hop = 1; hop <= DdtResolver.MaxHops; hop++)
        {
            ReferralRecord? answer = null;
            var sw = Stopwatch.StartNew();
            for (int attempt = 1; attempt <= tries && answer is null; attempt++)
            {
                sw.Restart();
                socket.SendTo(datagram, target);
                while (answer is null && sw.ElapsedMilliseconds < timeoutMs)
                {
                    EndPoint from = new IPEndPoint(target.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
                    socket.ReceiveTimeout = (int)Math.Max(1, timeoutMs - sw.ElapsedMilliseconds);
                    int n;
                    try { n = socket.ReceiveFrom(buffer, ref from); }
                    catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock) { break; }
                    catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused) { continue; }
                    if (referral.TryDecode(buffer.AsSpan(0, n)).Ok && referral.Nonce == nonce && referral.Records.Count > 0) answer = referral.Records[0];
                }
            }
            if (answer is null)
            {
                stdout.WriteLine($"  {hop,2}  {target.Address}  no Map-Referral within {timeoutMs} ms ({tries} tries)");
                stderr.WriteLine($"fastxtr lig: the walk stopped at {target.Address}");
                return 1;
            }
            string targets = string.Join(", ", answer.Referrals.Select(l => $"{l.Locator} p{l.Priority}/w{l.Weight}"));
            stdout.WriteLine($"  {hop,2}  {target.Address}  {ReferralRecord.ActionName(answer.Action)}  {answer.EidPrefix}/{answer.EidMaskLength}  ttl {answer.TtlMinutes} min"
                + (answer.Incomplete ? ", incomplete" : "") + (targets.Length > 0 ? $"  -> {targets}" : "") + $"  ({sw.Elapsed.TotalMilliseconds:F2} ms)");
            switch (answer.Action)
            {
                case MapReferralAction.NodeReferral or MapReferralAction.MsReferral:
                    var next = answer.Referrals.Where(l => l.Priority != 255 && l.Locator.PlainAddress.Kind is LispAddressKind.Ipv4 or LispAddressKind.Ipv6)
                        .OrderBy(l => l.Priority).FirstOrDefault();
                    if (answer.EidMaskLength <= lastLength || next is null)
                    {
                        stderr.WriteLine($"fastxtr lig: {(next is null ? "a referral with no usable target" : $"a referral loop (/{answer.EidMaskLength} after /{lastLength})")}");
                        return 1;
                    }
                    lastLength = answer.EidMaskLength;
                    target = new IPEndPoint(next.Locator.PlainAddress.ToIPAddress(), LispPorts.Control);
                    continue;
                case MapReferralAction.MsAck:
                    // The Map-Server (or the ETR it forwarded to) answers us, the ITR.
                    var sw2 = Stopwatch.StartNew();
                    while (sw2.ElapsedMilliseconds < timeoutMs)
                    {
                        EndPoint from = new IPEndPoint(target.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
                        socket.ReceiveTimeout = (int)Math.Max(1, timeoutMs - sw2.ElapsedMilliseconds);
                        int n;
                        try { n = socket.ReceiveFrom(buffer, ref from); }
                        catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock) { break; }
                        if (!reply.TryDecode(buffer.AsSpan(0, n)).Ok || reply.Nonce != nonce) continue;
                        stdout.WriteLine($"Received Map-Reply from {((IPEndPoint)from).Address}:");
                        foreach (var rec in reply.Records) Print(rec, stdout);
                        return 0;
                    }
                    stderr.WriteLine($"fastxtr lig: MS-ACK from {target.Address}, but no Map-Reply within {timeoutMs} ms");
                    return 1;
                case MapReferralAction.MsNotRegistered or MapReferralAction.DelegationHole:
                    stdout.WriteLine("No mapping: the EID is in no registration of the tree.");
                    return 0;
                default:
                    stderr.WriteLine($"fastxtr lig: {target.Address} is not authoritative for [{iid}]{eid}");
                    return 1;
            }
        }
        stderr.WriteLine($"fastxtr lig: more than {DdtResolver.MaxHops} referrals");
        return 1;
    }

    private static void Print(MappingRecord rec, TextWriter stdout)
    {
        stdout.WriteLine($"  {rec.EidPrefix}/{rec.EidMaskLength}  ttl {rec.TtlMinutes} min{(rec.Authoritative ? ", authoritative" : "")}{(rec.IsNegative ? $", negative, action {rec.Action}" : "")}");
        foreach (var l in rec.Locators)
        {
            var address = ContextEncoding.ReadLocator(l.Locator, out var ctx, out _);
            stdout.WriteLine($"    {address}  priority {l.Priority}  weight {l.Weight}  {(l.Reachable ? "up" : "down")}{(ctx is null ? "" : "  " + ctx)}");
        }
    }
}
