using FastXtr.MapServer;
using FastXtr.Lisp.Messages;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.MapServer;

/// <summary>Reloading the Map-Server's configuration (SIGHUP) while xTRs are registered and subscribed.</summary>
public partial class MapServerTests
{
    private static readonly byte[] TenantsOldKey = "tenants-secret"u8.ToArray();
    private static readonly byte[] TenantsNewKey = "tenants-rotated"u8.ToArray();

    /// <summary>The fixture's configuration with a site "edge" added, tenants' key changed and relay removed.</summary>
    private static string Reloaded() => Config
        .Replace("key 0 sha256 \"tenants-secret\"", "key 0 sha256 \"tenants-rotated\"", StringComparison.Ordinal)
        .Replace("""
            site relay
              key 0 sha256 "relay-secret"
              eid-prefix 3000 10.3.0.0/16 accept-more-specifics
            """, """
            site edge
              key 3 sha256 "edge-secret"
              eid-prefix 4000 10.4.0.0/16
              proxy-reply
            """, StringComparison.Ordinal);

    [Test]
    public void Reload_AddsChangesAndRemovesSites_UntouchedRegistrationsAndSubscriptionsStay()
    {
        Assert.That(Reloaded(), Does.Contain("site edge").And.Contain("tenants-rotated").And.Not.Contain("site relay"), "the edit took");
        RegisterInference();
        Subscribe();
        RegisterAndWaitForNotify(Register(2000, "10.1.0.7", 32, 0x77, ("192.0.2.7", 1, null)), TenantsOldKey);
        var relay = Register(3000, "10.3.0.1", 32, 0x33, ("192.0.2.33", 1, null));
        RegisterAndWaitForNotify(relay, "relay-secret"u8.ToArray());
        Assert.That(_server.Store.Count, Is.EqualTo(4));
        var plannersKey = new EidKey(1000, EidFamily.Ipv4, 0x0A010032, 32);
        Assert.That(_server.Store.TryGet(plannersKey, out var plannersBefore), Is.True);
        var plannersSite = _server.Config.Sites[0];

        var result = _server.Reload(MapServerConfig.Parse(Reloaded().Split('\n')));

        Assert.That((result.SitesAdded, result.SitesChanged, result.SitesRemoved, result.SitesUnchanged), Is.EqualTo((new[] { "edge" }, new[] { "tenants" }, new[] { "relay" }, 1)), result.ToString());
        Assert.That((result.RegistrationsRemoved, result.SubscriptionsDropped, result.NeedRestart), Is.EqualTo((1, 0, Array.Empty<string>())), result.ToString());
        Assert.That(_server.Config.Sites.Select(s => s.Name), Is.EqualTo(new[] { "planners", "tenants", "edge" }));
        Assert.That(_server.Counters[MsCounter.RegistrationsRemovedByReload], Is.EqualTo(1));
        Assert.That(_server.Counters[MsCounter.RegistrationsExpired], Is.EqualTo(0), "a removal by reload is not an expiry");

        // The untouched site: its registrations and its subscriber stay, and publications still reach it.
        Assert.That(Ask(1000, "10.1.0.50").Records[0].IsNegative, Is.False);
        Assert.That(_server.Publisher!.SubscriptionCount, Is.EqualTo(1));
        Assert.That(_server.Store.TryGet(plannersKey, out var planners) && ReferenceEquals(planners, plannersBefore), Is.True, "not even rebound: the very same registration");
        Assert.That(_server.Config.Sites[0], Is.SameAs(plannersSite), "an unchanged site keeps its configuration object");
        RegisterInference("busy");
        var publication = ReceiveNotify(PlannersKey);
        Assert.That(publication, Is.Not.Null, "the subscription outlived the reload");
        Ack(publication!);

        // The changed site: its registration stays until refreshed, and a refresh must use the new key.
        Assert.That(Ask(2000, "10.1.0.7").Records[0].IsNegative, Is.False, "registered before the key changed; still answered");
        Send(Register(2000, "10.1.0.7", 32, 0x77, ("192.0.2.7", 1, null)).ToSignedArray(TenantsOldKey));
        Assert.That(Receive(500), Is.Null, "the old key no longer authenticates");
        Assert.That(_server.Counters[MsCounter.RegisterAuthenticationFailed], Is.EqualTo(1));
        RegisterAndWaitForNotify(Register(2000, "10.1.0.7", 32, 0x77, ("192.0.2.8", 1, null)), TenantsNewKey);
        Assert.That(Ask(2000, "10.1.0.7").Records[0].Locators[0].Locator.ToString(), Is.EqualTo("192.0.2.8"));

        // The removed site: gone from the table and refused; the added one registers.
        Assert.That(Ask(3000, "10.3.0.1").Records[0].IsNegative, Is.True);
        Send(relay.ToSignedArray("relay-secret"u8.ToArray()));
        Assert.That(Receive(500), Is.Null);
        Assert.That(_server.Counters[MsCounter.RegisterNoSiteForEid], Is.EqualTo(1));
        var edge = Register(4000, "10.4.0.0", 16, 0x44, ("192.0.2.44", 1, null));
        edge.KeyId = 3;
        RegisterAndWaitForNotify(edge, "edge-secret"u8.ToArray());
        Assert.That(_server.Counters[MsCounter.ConfigReloads], Is.EqualTo(1));
    }

    [Test]
    public void Reload_ASubscribersSiteRemoved_DropsItsSubscription_AndAPrefixNoLongerHeldIsWithdrawnFromSubscribers()
    {
        RegisterInference();
        Subscribe();
        // planners now holds only 10.1.0.0/26 (10.1.0.50 stays inside it; the subscriber's own 10.1.0.99 does not).
        string narrowed = Config.Replace("eid-prefix 1000 10.1.0.0/16 accept-more-specifics", "eid-prefix 1000 10.1.0.0/26 accept-more-specifics", StringComparison.Ordinal);
        var result = _server.Reload(MapServerConfig.Parse(narrowed.Split('\n')));
        Assert.That((result.SitesChanged, result.RegistrationsRemoved, result.SubscriptionsDropped), Is.EqualTo((new[] { "planners" }, 1, 0)), result.ToString());
        Assert.That(Ask(1000, "10.1.0.99").Records[0].IsNegative, Is.True, "outside the site's prefixes now");
        Assert.That(Ask(1000, "10.1.0.50").Records[0].IsNegative, Is.False);

        string withoutPlanners = Config[..Config.IndexOf("site planners", StringComparison.Ordinal)] + Config[Config.IndexOf("site tenants", StringComparison.Ordinal)..];
        result = _server.Reload(MapServerConfig.Parse(withoutPlanners.Split('\n')));
        Assert.That((result.SitesRemoved, result.RegistrationsRemoved, result.SubscriptionsDropped), Is.EqualTo((new[] { "planners" }, 1, 1)), result.ToString());
        Assert.That(_server.Publisher!.SubscriptionCount, Is.EqualTo(0), "nothing could authenticate its publications any more");
        Assert.That(_server.Store.Count, Is.EqualTo(0));
    }

    [Test]
    public void Reload_ABrokenFile_IsRefusedWithLineAndReason_AndTheRunningConfigurationStays()
    {
        RegisterInference();
        var running = _server.Config;
        string broken = Config.Replace("  proxy-reply\nsite tenants", "  proxy-reply\n  colour blue\nsite tenants", StringComparison.Ordinal);
        Assert.That(broken, Does.Contain("colour blue"));
        var refused = _server.ReloadFrom(() => MapServerConfig.Parse(broken.Split('\n'), "mapserver.conf"));
        Assert.That(refused, Is.Null);
        Assert.That(_server.Counters[MsCounter.ConfigReloadsRefused], Is.EqualTo(1));
        Assert.That(_server.Counters[MsCounter.ConfigReloads], Is.EqualTo(0));
        Assert.That(_server.Config, Is.SameAs(running));
        Assert.That(Ask(1000, "10.1.0.50").Records[0].IsNegative, Is.False);
        Assert.That(Assert.Throws<ConfigException>(() => MapServerConfig.Parse(broken.Split('\n'), "mapserver.conf"))!.Message,
            Does.StartWith("mapserver.conf line 10: unknown site setting 'colour'"));
        var missing = _server.ReloadFrom(() => MapServerConfig.Load("/nonexistent/mapserver.conf"));
        Assert.That(missing, Is.Null);
        Assert.That(_server.Counters[MsCounter.ConfigReloadsRefused], Is.EqualTo(2));
    }

    [Test]
    public void Reload_ListenChanges_WaitForARestart_AndAreSaidSo()
    {
        var bound = _server.Config.Listen.Select(e => e.ToString()).ToList();
        var result = _server.Reload(MapServerConfig.Parse(Config.Replace("listen 127.0.0.1:0", "listen 127.0.0.2:4342", StringComparison.Ordinal).Split('\n')));
        Assert.That(result.NeedRestart, Has.Count.EqualTo(1).And.Some.StartsWith("listen 127.0.0.2:4342"));
        Assert.That(_server.Config.Listen.Select(e => e.ToString()), Is.EqualTo(bound), "the bound sockets stay");
        Assert.That(result.SitesUnchanged, Is.EqualTo(3));
        Assert.That(Ask(1000, "10.1.0.50").Records[0].IsNegative, Is.True, "still answering");
    }
}
