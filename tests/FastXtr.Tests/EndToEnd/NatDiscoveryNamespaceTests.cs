using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.EndToEnd;

/// <summary>
/// NAT discovery with real processes (draft-ietf-lisp-nat-traversal §5): a Map-Server and a public xTR on
/// 198.51.100.0/24, and an xTR on 10.99.0.2 behind a namespace that masquerades (nftables) its traffic as
/// 198.51.100.1. Both agents run with <c>nat-traversal on</c>: the one behind NAT learns from the authenticated
/// Info-Reply that it is seen as 198.51.100.1 and the RTR to use; the public one that it is not behind NAT.
/// </summary>
[TestFixture]
[Category("netns")]
[NonParallelizable]
public class NatDiscoveryNamespaceTests
{
    private ProcessLab _lab = null!;
    private string _dir = "";

    private string Ns(string role) => _lab.Ns(role);

    [OneTimeSetUp]
    public void Start()
    {
        Shell.RequireRoot("needs root for network namespaces");
        if (Shell.Sh("command -v nft").Code != 0) Assert.Fail("nft is not installed: scripts/test.sh installs it (apt-get install nftables)");
        _lab = new ProcessLab("nat", "a", "b", "c");
        _dir = _lab.Dir;
        string inside = Ns("a"), nat = Ns("b"), outside = Ns("c");
        string t = _lab.Tag[^4..];
        Shell.Must($"ip link add fxn1{t} netns {inside} type veth peer name fxn2{t} netns {nat}");
        Shell.Must($"ip link add fxn3{t} netns {nat} type veth peer name fxn4{t} netns {outside}");
        Shell.Must($"ip -n {inside} addr add 10.99.0.2/24 dev fxn1{t} && ip -n {inside} link set fxn1{t} up && ip -n {inside} route add default via 10.99.0.1");
        Shell.Must($"ip -n {nat} addr add 10.99.0.1/24 dev fxn2{t} && ip -n {nat} link set fxn2{t} up");
        Shell.Must($"ip -n {nat} addr add 198.51.100.1/24 dev fxn3{t} && ip -n {nat} link set fxn3{t} up");
        Shell.Must($"ip -n {outside} addr add 198.51.100.10/24 dev fxn4{t} && ip -n {outside} addr add 198.51.100.11/24 dev fxn4{t} && ip -n {outside} link set fxn4{t} up");
        ProcessLab.Masquerade(nat, $"fxn3{t}");
        File.WriteAllText(Path.Combine(_dir, "ms.conf"),
            $"listen 198.51.100.10:4342\ncontrol-socket {_dir}/ms.sock\nrtr 198.51.100.20\nsite agents\n  key 0 sha256 \"agents-secret\"\n  eid-prefix 1000 10.0.0.0/8 accept-more-specifics\n");
        Launch(outside, "mapserver", "--config", Path.Combine(_dir, "ms.conf"));
        foreach (var (x, ns, rloc, prefix) in new[] { ("a", inside, "10.99.0.2", "10.1.0.0/24"), ("c", outside, "198.51.100.11", "10.2.0.0/24") })
        {
            File.WriteAllText(Path.Combine(_dir, $"{x}.conf"),
                $"rloc-addr {rloc}\nshm {_lab.Shm(x)}\nmap-server 198.51.100.10 0 sha256 \"agents-secret\"\nmap-resolver 198.51.100.10\ndatabase-mapping 1000 {prefix} {rloc}\nnat-traversal on\nrloc-probe-interval 0\n");
            Launch(ns, "agent", "--config", Path.Combine(_dir, $"{x}.conf"));
        }
    }

    private void Launch(string ns, params string[] args) => _lab.Launch(ns, args);

    [OneTimeTearDown]
    public void Stop() => _lab?.Dispose();

    private System.Text.Json.Nodes.JsonNode? Status(string x) => _lab.AgentStatus(x);

    private System.Text.Json.Nodes.JsonNode? Nat(string x) => _lab.AgentStatus(x)?["nat"]?.AsArray().FirstOrDefault();

    [Test]
    public void AnXtrBehindNat_LearnsItsTranslatedAddress_AndTheRtr()
    {
        TwoXtrLab.WaitFor(() => Nat("a") is not null, "the Info-Reply to the xTR behind NAT", 10_000);
        var nat = Nat("a")!;
        Assert.That(nat["behind_nat"]!.GetValue<bool>(), Is.True, nat.ToJsonString());
        Assert.That(nat["translated"]!.GetValue<string>(), Does.StartWith("198.51.100.1:"), "the NAT's public address, as the Map-Server saw it");
        Assert.That(nat["rtrs"]!.AsArray().Select(r => r!.GetValue<string>()), Is.EqualTo(new[] { "198.51.100.20" }));
        Assert.That(Status("a")!["counters"]!["info-replies-received"]!.GetValue<long>(), Is.GreaterThanOrEqualTo(1));
        string shown = Shell.Must($"{Shell.FastxtrExe()} show agents --api-socket {_lab.AgentApiSocket("a")}");
        Assert.That(shown, Does.Contain("nat: 198.51.100.10:4342 sees this xTR as 198.51.100.1:").And.Contain("behind NAT; RTRs offered: 198.51.100.20"), shown);
    }

    [Test]
    public void APublicXtr_IsNotBehindNat()
    {
        TwoXtrLab.WaitFor(() => Nat("c") is not null, "the Info-Reply to the public xTR", 10_000);
        var nat = Nat("c")!;
        Assert.That((nat["behind_nat"]!.GetValue<bool>(), nat["translated"]!.GetValue<string>()), Is.EqualTo((false, "198.51.100.11:4342")), nat.ToJsonString());
    }
}
