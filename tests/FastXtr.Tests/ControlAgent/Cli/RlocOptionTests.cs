using FastXtr.Cli;
using FastXtr.Packets;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.Cli;

/// <summary>`fastxtr dataplane --rloc-addr`: once per family, with clear errors for what cannot be an RLOC.</summary>
[TestFixture]
public class RlocOptionTests
{
    [Test]
    public void OnePerFamily_InEitherOrder()
    {
        var (v4, v6) = CliParsing.ParseRlocs(["2001:db8::1", "192.0.2.1"], "--rloc-addr");
        Assert.That((v4, v6), Is.EqualTo((0xC0000201u, Ipv6Header.ToUInt128(System.Net.IPAddress.Parse("2001:db8::1")))));
        Assert.That(CliParsing.ParseRlocs(["192.0.2.1"], "--rloc-addr"), Is.EqualTo((0xC0000201u, (UInt128)0)));
        Assert.That(CliParsing.ParseRlocs(["fd00::2"], "--rloc-addr").Ipv4, Is.Zero);
    }

    [TestCase("192.0.2.1,192.0.2.2", "a second IPv4 address")]
    [TestCase("fd00::1,fd00::2", "a second IPv6 address")]
    [TestCase("::ffff:192.0.2.1", "expected a unicast IPv4 address")]
    [TestCase("fe80::1", "not link-local")]
    [TestCase("::", "expected a unicast")]
    [TestCase("gateway", "expected a unicast")]
    public void WhatCannotBeAnRloc_IsRefused(string given, string expected)
    {
        var e = Assert.Throws<FormatException>(() => CliParsing.ParseRlocs(given.Split(','), "--rloc-addr"));
        Assert.That(e!.Message, Does.Contain(expected).And.StartsWith("--rloc-addr"));
    }
}
