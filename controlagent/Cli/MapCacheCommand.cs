using FastXtr.Packets;
using System.CommandLine;
using FastXtr.SharedMemory.MapCache;
using FastXtr.SharedMemory;

namespace FastXtr.Cli;

/// <summary>
/// <c>fastxtr map-cache add|del</c>: static map-cache entries written straight into a data plane's shared memory
/// through the writer API, for a gateway without a control agent (and for benchmarks). The map-cache has one writer:
/// this refuses to run while a control agent is attached.
/// </summary>
public static class MapCacheCommand
{
    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("map-cache", "Add or delete static map-cache entries in a data plane's shared memory (only when no `fastxtr agent` owns it).");
        command.Subcommands.Add(Add(stdout, stderr));
        command.Subcommands.Add(Delete(stdout, stderr));
        return command;
    }

    private static (Option<string> Shm, Option<uint> Iid, Option<string> Eid) Common()
    {
        var shm = new Option<string>("--shm") { Description = "the data plane's shared-memory name", DefaultValueFactory = _ => "fastxtr" };
        var iid = new Option<uint>("--iid") { Description = "the Instance ID (agent group)", DefaultValueFactory = _ => 0 };
        var eid = new Option<string>("--eid") { Description = "the EID prefix, e.g. 10.1.0.0/24", Required = true };
        return (shm, iid, eid);
    }

    private static MapCacheWriter? Writer(SharedRegion region, TextWriter stderr)
    {
        int agent = region.Header.AgentPid;
        if (agent != 0 && NativeInterop.Processes.IsRunning(agent))
        {
            stderr.WriteLine($"fastxtr map-cache: the control agent (pid {agent}) owns this map-cache; change it through the agent");
            return null;
        }
        // The writer lease: refused with the holder's pid while any other writer lives.
        return region.CreateWriter();
    }

    private static Command Add(TextWriter stdout, TextWriter stderr)
    {
        var (shm, iid, eid) = Common();
        var rloc = new Option<string[]>("--rloc") { Description = "a locator ADDRESS[:PORT][,PRIORITY[,WEIGHT]] (repeat, up to 8), e.g. 192.0.2.2,1,100 or [2001:db8::2]:5000; PORT is where it takes LISP data when not 4341 (an ETR run with --port); none makes a negative entry", Arity = ArgumentArity.ZeroOrMore };
        var action = new Option<string>("--action") { Description = "for a negative entry: drop, policy-denied, auth-failure, send-map-request, native-forward", DefaultValueFactory = _ => "drop" };
        action.AcceptOnlyFromAmong("drop", "policy-denied", "auth-failure", "send-map-request", "native-forward");
        var ttl = new Option<uint>("--ttl") { Description = "minutes until the entry expires (4294967295: never)", DefaultValueFactory = _ => uint.MaxValue };
        var command = new Command("add", "Add or replace one entry.");
        foreach (var o in new Option[] { shm, iid, eid, rloc, action, ttl }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            try
            {
                var (family, prefix, length) = EidPrefix.Parse(parse.GetValue(eid)!, "--eid");
                var rlocs = (parse.GetValue(rloc) ?? []).Select(RlocSpec.Parse).ToList();
                var act = parse.GetValue(action) switch
                {
                    "policy-denied" => MapReplyAction.DropPolicyDenied,
                    "auth-failure" => MapReplyAction.DropAuthFailure,
                    "send-map-request" => MapReplyAction.SendMapRequest,
                    "native-forward" => MapReplyAction.NativelyForward,
                    _ => rlocs.Count == 0 ? MapReplyAction.DropNoReason : MapReplyAction.NoAction,
                };
                using var region = SharedRegion.Attach(parse.GetValue(shm)!);
                using var writer = Writer(region, stderr);
                if (writer is null) return 1;
                var result = writer.Upsert(new MapCacheEntrySpec(parse.GetValue(iid), 0, family, prefix, length, rlocs, act, parse.GetValue(ttl)));
                stdout.WriteLine($"{result.ToString().ToLowerInvariant()} [{parse.GetValue(iid)}] {EidPrefix.Format(family, prefix)}/{length}");
                return result is MapCacheWriteResult.Inserted or MapCacheWriteResult.Updated ? 0 : 1;
            }
            catch (Exception e) when (e is FormatException or ArgumentException or SharedRegionException or FastXtr.NativeInterop.NativeException)
            {
                stderr.WriteLine($"fastxtr map-cache add: {e.Message}");
                return e is FormatException or ArgumentException ? Program.ExitUsage : 1;
            }
        });
        return command;
    }

    private static Command Delete(TextWriter stdout, TextWriter stderr)
    {
        var (shm, iid, eid) = Common();
        var command = new Command("del", "Delete one entry.");
        foreach (var o in new Option[] { shm, iid, eid }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            try
            {
                var (family, prefix, length) = EidPrefix.Parse(parse.GetValue(eid)!, "--eid");
                using var region = SharedRegion.Attach(parse.GetValue(shm)!);
                using var writer = Writer(region, stderr);
                if (writer is null) return 1;
                var result = writer.Remove(parse.GetValue(iid), 0, family, prefix, length);
                stdout.WriteLine($"{result.ToString().ToLowerInvariant()} [{parse.GetValue(iid)}] {EidPrefix.Format(family, prefix)}/{length}");
                return result == MapCacheWriteResult.Removed ? 0 : 1;
            }
            catch (Exception e) when (e is FormatException or SharedRegionException or FastXtr.NativeInterop.NativeException)
            {
                stderr.WriteLine($"fastxtr map-cache del: {e.Message}");
                return e is FormatException ? Program.ExitUsage : 1;
            }
        });
        return command;
    }
}
