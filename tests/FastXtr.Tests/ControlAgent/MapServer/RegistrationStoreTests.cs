using System.Collections.Immutable;
using System.Net;
using FastXtr.Lisp.Answers;
using FastXtr.MapServer;
using FastXtr.Lisp.Messages;
using FastXtr.SharedMemory.MapCache;
using NUnit.Framework;

namespace FastXtr.Tests.ControlAgent.MapServer;

/// <summary>The registration store on its own: the expiry queue and the xTR-ID → site index.</summary>
[TestFixture]
public class RegistrationStoreTests
{
    private static readonly SiteConfig Site = MapServerConfig.Parse("""
        site planners
          key 0 sha256 "k"
          eid-prefix 1000 10.0.0.0/8 accept-more-specifics
        """.Split('\n')).Sites[0];

    private static EidKey Key(int i) => new(1000, EidFamily.Ipv4, 0x0A000000u + (uint)i, 32);

    private static XtrRegistration Xtr(UInt128 xtrId, long expiresAtMs) =>
        new(xtrId, 1, new IPEndPoint(IPAddress.Loopback, 4342),
            [new RegisteredRloc(LispAddress.Parse("192.0.2.2"), 1, 100, 255, 0, true, null)], false, 3, 0, DateTime.UtcNow, DateTime.UtcNow, expiresAtMs);

    [Test]
    public void Expire_RemovesAtMostItsBudgetPerCall_AndTheRestOnTheNext()
    {
        var store = new RegistrationStore();
        for (int i = 0; i < 10; i++) store.Register(Key(i), Site, Xtr(7, expiresAtMs: 100));
        for (int i = 10; i < 13; i++) store.Register(Key(i), Site, Xtr(8, expiresAtMs: 10_000));
        var removedPerCall = new List<int>();
        for (int call = 0; call < 5; call++) removedPerCall.Add(store.Expire(nowMs: 200, budget: 4));
        Assert.That(removedPerCall, Is.EqualTo(new[] { 4, 4, 2, 0, 0 }));
        Assert.That(store.Count, Is.EqualTo(3), "the unexpired registrations stay");
        Assert.That(store.ExpiryChecks, Is.EqualTo(10), "the three not due were not looked at");
    }

    [Test]
    public void Expire_LooksOnlyAtWhatIsDue_NotAtTheWholeTable()
    {
        var store = new RegistrationStore();
        for (int i = 0; i < 10_000; i++) store.Register(Key(i), Site, Xtr(7, expiresAtMs: 100_000 + i));
        for (int t = 1; t <= 50; t++) Assert.That(store.Expire(nowMs: t * 10), Is.Zero);
        Assert.That(store.ExpiryChecks, Is.Zero, "nothing due, nothing looked at");
        for (int i = 20_000; i < 20_003; i++) store.Register(Key(i), Site, Xtr(8, expiresAtMs: 600));
        Assert.That((store.Expire(nowMs: 610), store.ExpiryChecks, store.Count), Is.EqualTo((3, 3L, 10_000)));
        // Due in order of time, a slice per call.
        Assert.That(store.Expire(nowMs: 100_000 + 1_499, budget: 1_000), Is.EqualTo(1_000));
        Assert.That(store.Expire(nowMs: 100_000 + 1_499, budget: 1_000), Is.EqualTo(500));
        Assert.That(store.TryGet(Key(1_499), out _), Is.False);
        Assert.That(store.TryGet(Key(1_500), out _), Is.True);
    }

    [Test]
    public void ASecondXtrsEarlierExpiry_RemovesOnlyItsRegistration_AtItsOwnTime()
    {
        var store = new RegistrationStore();
        store.Register(Key(1), Site, Xtr(7, expiresAtMs: 10_000));
        store.Register(Key(1), Site, Xtr(8, expiresAtMs: 1_000));
        Assert.That(store.Expire(nowMs: 2_000), Is.EqualTo(1), "xTR 8's registration, at its time");
        Assert.That(store.TryGet(Key(1), out var left) ? left.ByXtr.Keys.Single() : 0, Is.EqualTo((UInt128)7));
        Assert.That(store.Expire(nowMs: 9_000), Is.Zero);
        Assert.That((store.Expire(nowMs: 10_000), store.Count), Is.EqualTo((1, 0)));
    }

    [Test]
    public void ARefreshThatMovesTheExpiryEarlier_ExpiresAtTheEarlierTime()
    {
        // A reload that shortened registration-timeout: the next refresh expires sooner than the one before.
        var store = new RegistrationStore();
        var (first, second) = (Xtr(7, expiresAtMs: 10_000), Xtr(7, expiresAtMs: 10_000));
        store.Register(Key(1), Site, first);
        store.Register(Key(2), Site, second);
        store.Register(Key(1), Site, first with { ExpiresAtMs = 2_000 });
        Assert.That(store.TryRefresh(Key(2), Site, 7, 1, second.Source, second.Rlocs, false, 3, 0, false, DateTime.UtcNow, 3_000), Is.True);
        Assert.That(store.Expire(nowMs: 2_500), Is.EqualTo(1));
        Assert.That(store.Expire(nowMs: 3_500), Is.EqualTo(1));
        Assert.That(store.Count, Is.Zero);
    }

    [Test]
    public void Expire_ARegistrationAddedDuringAPass_IsCaughtByALaterOne()
    {
        var store = new RegistrationStore();
        for (int i = 0; i < 6; i++) store.Register(Key(i), Site, Xtr(7, expiresAtMs: 10_000));
        Assert.That(store.Expire(nowMs: 200, budget: 3), Is.EqualTo(0));
        store.Register(Key(50), Site, Xtr(9, expiresAtMs: 100));
        int removed = 0;
        for (int call = 0; call < 6 && store.Count > 6; call++) removed += store.Expire(nowMs: 200, budget: 3);
        Assert.That((removed, store.Count), Is.EqualTo((1, 6)));
    }

    [Test]
    public void ARefreshThatChangesNothing_MovesTheTimesInPlace_AndStillExpiresOnTime()
    {
        var store = new RegistrationStore();
        var changes = 0;
        store.Changed += (_, _) => changes++;
        var first = Xtr(7, expiresAtMs: 1_000);
        var (_, stored) = store.Register(Key(1), Site, first);
        Assert.That(changes, Is.EqualTo(1));
        // The same locator set object and the same flags: a refresh. No new registration, no publication; the
        // expiry moved, and expiry, queued for the old time, does not remove it.
        Assert.That(store.Expire(nowMs: 500, budget: 10), Is.Zero);
        var again = first with { LastRegistered = DateTime.UtcNow.AddSeconds(1), ExpiresAtMs = 5_000 };
        var (old, now) = store.Register(Key(1), Site, again);
        Assert.That((ReferenceEquals(old, stored), ReferenceEquals(now, stored), changes), Is.EqualTo((true, true, 1)));
        Assert.That(stored!.ByXtr[7].ExpiresAtMs, Is.EqualTo(5_000));
        // From another source port (a NAT's new mapping, an xTR restarted): still a refresh, the source moved in place
        // (the publisher notifies that address when the prefix moves away).
        var moved = new IPEndPoint(IPAddress.Parse("192.0.2.77"), 61000);
        var (o3, n3) = store.Register(Key(1), Site, first with { Source = moved, ExpiresAtMs = 7_000 });
        Assert.That((ReferenceEquals(o3, stored), ReferenceEquals(n3, stored), changes), Is.EqualTo((true, true, 1)));
        Assert.That((stored.ByXtr[7].Source, stored.ByXtr[7].ExpiresAtMs), Is.EqualTo((moved, 7_000L)));

        Assert.That(store.Expire(nowMs: 2_000, budget: 10), Is.Zero, "refreshed: not expired at its old time");
        Assert.That(store.Expire(nowMs: 8_000, budget: 10), Is.EqualTo(1), "expired at its new time");

        // Another map-version, or a second xTR for the prefix, is a new registration as before.
        var x = Xtr(7, 1_000);
        store.Register(Key(2), Site, x);
        var (before, after) = store.Register(Key(2), Site, x with { MapVersion = 5 });
        Assert.That(ReferenceEquals(before, after), Is.False);
        var (b2, a2) = store.Register(Key(2), Site, Xtr(8, 1_000));
        Assert.That((ReferenceEquals(b2, a2), a2!.ByXtr.Count), Is.EqualTo((false, 2)));
    }

    [Test]
    public void TryRefresh_MovesOnlyAnExactRepeat_ForTheSiteAsItIsNow()
    {
        var store = new RegistrationStore();
        var changes = 0;
        store.Changed += (_, _) => changes++;
        var first = Xtr(7, expiresAtMs: 1_000);
        var (_, stored) = store.Register(Key(1), Site, first);
        var moved = new IPEndPoint(IPAddress.Parse("192.0.2.78"), 61001);
        bool Refresh(UInt128 xtrId, ImmutableArray<RegisteredRloc> rlocs, uint ttl = 3, ushort version = 0, SiteConfig? site = null) =>
            store.TryRefresh(Key(1), site ?? Site, xtrId, 1, moved, rlocs, false, ttl, version, false, DateTime.UtcNow, 9_000);

        Assert.That(Refresh(8, first.Rlocs), Is.False, "another xTR");
        Assert.That(Refresh(7, [new RegisteredRloc(LispAddress.Parse("192.0.2.2"), 1, 100, 255, 0, true, null)]), Is.False, "an equal locator set that is not the stored one");
        Assert.That(Refresh(7, first.Rlocs, ttl: 4), Is.False, "another TTL");
        Assert.That(Refresh(7, first.Rlocs, version: 9), Is.False, "another map-version");
        var reloaded = MapServerConfig.Parse("""
            site planners
              key 0 sha256 "k2"
              eid-prefix 1000 10.0.0.0/8 accept-more-specifics
            """.Split('\n')).Sites[0];
        Assert.That(Refresh(7, first.Rlocs, site: reloaded), Is.False, "checked against a site the store does not hold as current");
        Assert.That(store.TryRefresh(Key(2), Site, 7, 1, moved, first.Rlocs, false, 3, 0, false, DateTime.UtcNow, 9_000), Is.False, "not registered");
        Assert.That(stored!.ByXtr[7].ExpiresAtMs, Is.EqualTo(1_000), "nothing moved by a refusal");

        Assert.That(Refresh(7, first.Rlocs), Is.True);
        Assert.That((stored.ByXtr[7].Source, stored.ByXtr[7].ExpiresAtMs, changes), Is.EqualTo((moved, 9_000L, 1)));
        Assert.That(store.Expire(nowMs: 5_000, budget: 10), Is.Zero, "expires at its new time");
    }

    [Test]
    public void SiteOfAnXtr_IsKnownWhileItHasRegistrations()
    {
        var store = new RegistrationStore();
        Assert.That(store.TryGetSiteOf(7, out _), Is.False);
        store.Register(Key(1), Site, Xtr(7, 100));
        store.Register(Key(2), Site, Xtr(7, 10_000));
        store.Register(Key(2), Site, Xtr(7, 20_000)); // a refresh is not a second prefix
        Assert.That(store.TryGetSiteOf(7, out var site) ? site.Current.Name : null, Is.EqualTo("planners"));
        store.Expire(nowMs: 200);
        Assert.That(store.TryGetSiteOf(7, out _), Is.True, "one prefix is still registered");
        Assert.That(store.Withdraw(Key(2), 7), Is.True);
        Assert.That(store.TryGetSiteOf(7, out _), Is.False, "its last prefix is withdrawn");
    }
}
