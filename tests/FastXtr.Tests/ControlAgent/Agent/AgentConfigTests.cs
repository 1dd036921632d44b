using FastXtr.Agent;
using FastXtr.Lisp.Messages;
using FastXtr.MapServer;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Agent;

[TestFixture]
public class AgentConfigTests
{
    [Test]
    public void ExampleConfiguration_Parses_WithContext()
    {
        string dir = TestContext.CurrentContext.TestDirectory;
        while (!File.Exists(Path.Combine(dir, "FastXtr.sln"))) dir = Path.GetDirectoryName(dir)!;
        var c = AgentConfig.Parse(File.ReadAllLines(Path.Combine(dir, "controlagent", "Agent", "agent.example.conf")));
        Assert.That((c.MapServers.Count, c.MapResolvers.Count, c.Database.Count), Is.EqualTo((1, 1, 2)));
        Assert.That(c.Database[1].Context!.HasHardware("gpu"), Is.True);
        Assert.That(c.XtrId, Is.Not.EqualTo(UInt128.Zero));
        Assert.That(AgentConfig.Parse(File.ReadAllLines(Path.Combine(dir, "controlagent", "Agent", "agent.example.conf"))).XtrId, Is.EqualTo(c.XtrId), "stable across restarts");
    }

    [Test]
    public void QuotedWords_Comments_AndJsonValues_ReadTheSameWayAsTheMapServersFile()
    {
        var c = AgentConfig.Parse([
            "rloc-addr 192.0.2.1   # the RLOC",
            "map-server 192.0.2.10 3 sha256 \"a secret # with spaces\"",
            "  map-resolver 192.0.2.11:4343",
            "database-mapping 1000 10.1.0.0/24 192.0.2.1,1,50 context {\"agent-context\":{\"description\":\"rack #7\"}}",
            "profile gpu {\"agent-constraints\":{\"hardware\":[\"gpu\"]}}  ",
            "subscribe off",
        ], "agent.conf");
        Assert.That(System.Text.Encoding.UTF8.GetString(c.MapServers[0].Key.Secret), Is.EqualTo("a secret # with spaces"));
        Assert.That((c.MapServers[0].Key.KeyId, c.MapResolvers[0].Port), Is.EqualTo(((byte)3, 4343)));
        Assert.That(c.Database[0].Context!.ToString(), Does.Contain("rack #7"), "a # inside the JSON is not a comment");
        Assert.That((c.Profiles.Single().Name, c.Subscribe), Is.EqualTo(("gpu", false)));
    }

    [TestCase("rloc-addr 192.0.2.1\nbogus 1", "line 2: unknown setting 'bogus'")]
    [TestCase("rloc-addr 192.0.2.1\nmap-server 192.0.2.10 0 sha256 \"unterminated", "line 2: unterminated quote")]
    [TestCase("rloc-addr 192.0.2.1\ndatabase-mapping 1000 10.1.0.0/24 192.0.2.1 {\"agent-context\":{}}", "line 2: expected 'database-mapping IID PREFIX")]
    [TestCase("rloc-addr 192.0.2.1\nsubscribe maybe", "line 2: subscribe takes on or off")]
    [TestCase("rloc-addr 192.0.2.1\nregister-interval soon", "line 2: ")]
    [TestCase("rloc-addr 192.0.2.1\nregister-interval 0", "line 2: register-interval '0' must be a number from 1 to 86400")]
    [TestCase("rloc-addr 192.0.2.1\nrloc-probe-interval -5", "line 2: rloc-probe-interval '-5' must be a number from 0 to 86400")]
    [TestCase("map-resolver 192.0.2.10", "'rloc-addr' is required")]
    [TestCase("rloc-addr 192.0.2.1\nmap-server 192.0.2.10 0 md5 x", "line 2: algorithm 'md5'")]
    [TestCase("rloc-addr 192.0.2.1\nrloc-addr 192.0.2.2", "line 2: a second IPv4 rloc-addr (192.0.2.1 is given already): one per family")]
    [TestCase("rloc-addr 2001:db8::1\nrloc-addr 2001:db8::2", "line 2: a second IPv6 rloc-addr")]
    [TestCase("rloc-addr ::ffff:192.0.2.1", "line 1: expected 'rloc-addr ADDRESS'")]
    [TestCase("rloc-addr fe80::1", "line 1: expected 'rloc-addr ADDRESS'")]
    [TestCase("rloc-addr 0.0.0.0", "line 1: expected 'rloc-addr ADDRESS'")]
    [TestCase("rloc-addr 192.0.2.1\ndatabase-mapping 1000 10.1.0.0/24 192.0.2.1:5000", "line 2: database-mapping locator '192.0.2.1:5000': a registered locator has no port")]
    [TestCase("rloc-addr 192.0.2.1\ndatabase-mapping 1000 10.1.0.0/24 192.0.2.1 context {\"agent-context\":{\"state\":\"asleep\"}}", "line 2: context: \"state\" must be one of")]
    [TestCase("rloc-addr 192.0.2.1\nnat-keepalive 0", "line 2: nat-keepalive '0' must be a number from 1 to 3600")]
    [TestCase("rloc-addr 192.0.2.1\nnat-site 1000 10.0.0.0/8 0 sha256", "line 2: expected 'nat-site IID PREFIX KEY-ID sha1|sha256 SECRET'")]
    [TestCase("rloc-addr 192.0.2.1\nnat-site 1000 10.0.0.0/8 0 md5 x", "line 2: algorithm 'md5'")]
    [TestCase("rloc-addr 192.0.2.1\nnat-site 1000 10.0.0.0/8 0 sha256 a\nnat-site 1000 10.1.0.0/16 1 sha256 b", "line 3: nat-site [1000]10.1.0.0/16 accept-more-specifics overlaps one given before")]
    [TestCase("rloc-addr 192.0.2.1\nnat-binding-timeout 1", "line 2: nat-binding-timeout '1' must be a number from 2 to 86400")]
    [TestCase("rloc-addr 192.0.2.1\ndata-port 0", "line 2: data-port '0' must be a number from 1 to 65535")]
    public void InvalidConfiguration_IsRefusedWithTheLine(string text, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => AgentConfig.Parse(text.Split('\n'), "agent.conf"));
        Assert.That(e!.Message, Does.Contain(expected));
    }

    [Test]
    public void RlocAddr_OncePerFamily_MakesADualStackXtr()
    {
        var c = AgentConfig.Parse(["rloc-addr fd00:2::1", "rloc-addr 192.0.2.1"]);
        Assert.That(c.RlocAddresses.Select(a => a.ToString()), Is.EqualTo(new[] { "fd00:2::1", "192.0.2.1" }));
        Assert.That(c.RlocAddress!.ToString(), Is.EqualTo("fd00:2::1"), "the first one names the xTR");
        Assert.That(AgentConfig.Parse(["rloc-addr fd00:3::1"]).XtrId, Is.Not.EqualTo(c.XtrId), "IPv6 RLOCs that differ only in their prefix give different xTR-IDs");
        Assert.That(c.XtrId >> 96, Is.EqualTo((UInt128)0x46585452), "\"FXTR\" in front");
        Assert.That((c.RlocOf(System.Net.Sockets.AddressFamily.InterNetwork)!.ToString(), c.RlocOf(System.Net.Sockets.AddressFamily.InterNetworkV6)!.ToString()),
            Is.EqualTo(("192.0.2.1", "fd00:2::1")));
    }

    [Test]
    public void NatTraversalSettings_Parse()
    {
        var c = AgentConfig.Parse(["rloc-addr 192.0.2.1", "nat-traversal on", "nat-keepalive 5", "data-port 5000",
            "nat-site 1000 10.0.0.0/8 3 sha256 \"s1\"", "nat-site 2000 10.0.0.0/8 0 sha1 s2", "nat-binding-timeout 30"]);
        Assert.That((c.NatTraversal, c.NatKeepalive, c.DataPort, c.NatBindingTimeout), Is.EqualTo((true, TimeSpan.FromSeconds(5), (ushort)5000, TimeSpan.FromSeconds(30))));
        Assert.That(c.NatSites.Select(n => (n.Prefix.ToString(), n.Key.KeyId, n.Key.Algorithm)), Is.EqualTo(new[]
        {
            ("[1000]10.0.0.0/8 accept-more-specifics", (byte)3, AuthenticationAlgorithm.HmacSha256),
            ("[2000]10.0.0.0/8 accept-more-specifics", (byte)0, AuthenticationAlgorithm.HmacSha1),
        }), "the same prefix in another Instance ID is another site");
        Assert.That(c.NatSites[0].Prefix.Covers(1000, FastXtr.Packets.EidFamily.Ipv4, 0x0A010000, 24), Is.True, "an xTR's /24 inside the site's /8");
        var d = AgentConfig.Parse(["rloc-addr 192.0.2.1"]);
        Assert.That((d.NatKeepalive, d.DataPort, d.NatBindingTimeout, d.Rtr), Is.EqualTo((TimeSpan.FromSeconds(15), (ushort)4341, TimeSpan.FromSeconds(60), false)), "defaults");
    }

    [Test]
    public void AnRtrConfiguration_MustNameSitesAndAResolver_AndHaveNoEidsOfItsOwn()
    {
        var c = AgentConfig.Parse(["rloc-addr 198.51.100.20", "database-mapping 1000 10.1.0.0/24 198.51.100.20", "map-server 198.51.100.10 0 sha256 k", "nat-traversal on"]);
        var problems = FastXtr.Cli.RtrCommand.RtrProblems(c, "rtr.conf");
        Assert.That(problems, Has.Count.EqualTo(5));
        Assert.That(string.Join("\n", problems), Does.Contain("no 'nat-site").And.Contain("no 'map-resolver").And.Contain("remove the database-mapping lines")
            .And.Contain("remove the map-server lines").And.Contain("nat-traversal is for xTRs behind NAT"));
        var ok = AgentConfig.Parse(["rloc-addr 198.51.100.20", "map-resolver 198.51.100.10", "nat-site 1000 10.0.0.0/8 0 sha256 k"]);
        Assert.That(FastXtr.Cli.RtrCommand.RtrProblems(ok, "rtr.conf"), Is.Empty);
    }
}
