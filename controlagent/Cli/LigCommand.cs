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
        var command = new Command("lig", "Ask a Map-Resolver for an EID's mapping and print the answer (LISP Internet Groper), optionally with agent constraints.");
        command.Arguments.Add(eid);
        foreach (var o in new Option[] { iid, resolver, constraints, source, timeout, count }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            try
            {
                return Run(parse.GetValue(eid)!, parse.GetValue(iid), MapServerConfig.ParseEndpoint(parse.GetValue(resolver)!), parse.GetValue(constraints),
                    parse.GetValue(source), parse.GetValue(timeout), parse.GetValue(count), stdout, stderr);
            }
            catch (FormatException e)
            {
                stderr.WriteLine($"fastxtr lig: {e.Message}");
                return Program.ExitUsage;
            }
        });
        return command;
    }

    public static int Run(string eidText, uint iid, IPEndPoint resolver, string? constraintsJson, string? sourceEid, int timeoutMs, int tries, TextWriter stdout, TextWriter stderr)
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
        var ecm = new EncapsulatedControlMessage { InnerSourcePort = (ushort)local.Port };
        var innerSource = local.Address.AddressFamily == eid.AddressFamily ? local.Address : (eid.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any);
        ecm.SetInnerAddresses(innerSource, eid);
        ecm.SetInnerMessage(request.ToArray());
        byte[] datagram = ecm.ToArray();
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
