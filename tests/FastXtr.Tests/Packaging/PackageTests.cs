using FastXtr.Tests.Support;
using NUnit.Framework;

namespace FastXtr.Tests.Packaging;

/// <summary>
/// The Debian package that scripts/package.sh builds (scripts/test.sh builds it into out/deb first): its contents and
/// modes, its units as systemd-analyze reads them, and an install into a scratch root (dpkg --root, maintainer
/// scripts run from outside with DPKG_ROOT) from which the executable runs.
/// </summary>
[TestFixture]
[Category("package")]
[NonParallelizable]
public class PackageTests
{
    private static string Deb()
    {
        string? path = Environment.GetEnvironmentVariable("FASTXTR_DEB");
        if (string.IsNullOrEmpty(path))
        {
            string dir = TestContext.CurrentContext.TestDirectory;
            while (dir.Length > 1 && !File.Exists(Path.Combine(dir, "FastXtr.sln"))) dir = Path.GetDirectoryName(dir)!;
            path = Directory.Exists(Path.Combine(dir, "out", "deb"))
                ? Directory.GetFiles(Path.Combine(dir, "out", "deb"), "fastxtr_*_amd64.deb").OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault()
                : null;
        }
        if (path is null || !File.Exists(path)) Assert.Fail("no package in out/deb: run scripts/package.sh out/deb (scripts/test.sh does)");
        return path!;
    }

    [Test]
    public void Contents_TheExecutableUnitsConfigurationsAndDocumentation_WithTheirModes()
    {
        var listing = Shell.Must($"dpkg-deb -c '{Deb()}'").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToDictionary(f => f[5].TrimStart('.'), f => (Mode: f[0], Owner: f[1], Target: f.Length > 7 ? f[7] : null));
        Assert.That(listing["/usr/lib/fastxtr/fastxtr"].Mode, Is.EqualTo("-rwxr-xr-x"));
        Assert.That(listing["/usr/bin/fastxtr"], Is.EqualTo(("lrwxrwxrwx", "root/root", (string?)"../lib/fastxtr/fastxtr")));
        foreach (var role in new[] { "dataplane", "agent", "mapserver", "rtr" })
            Assert.That(listing[$"/lib/systemd/system/fastxtr-{role}@.service"].Mode, Is.EqualTo("-rw-r--r--"));
        foreach (var conf in new[] { "mapserver.conf", "xtr.conf", "xtr.dataplane" })
            Assert.That(listing[$"/etc/fastxtr/{conf}"].Mode, Is.EqualTo("-rw-r-----"), "configurations hold secrets");
        Assert.That(listing.Keys, Has.Member("/usr/share/doc/fastxtr/README.md").And.Member("/usr/share/doc/fastxtr/copyright")
            .And.Member("/usr/share/doc/fastxtr/examples/agent.example.conf").And.Member("/usr/share/doc/fastxtr/changelog.Debian.gz"));
        Assert.That(listing.Values.Select(v => v.Owner).Distinct(), Is.EqualTo(new[] { "root/root" }));

        string control = Shell.Must($"dpkg-deb -f '{Deb()}'");
        Assert.That(control, Does.Contain("Package: fastxtr").And.Contain("Architecture: amd64").And.Match(@"Version: \d+\.\d+\.\d+\+git\d+\.[0-9a-f]+"));
        Assert.That(control, Does.Contain("Depends: libc6 (>= 2.36), libgcc-s1, libstdc++6, libssl3"), "self-contained: no .NET package to depend on");
        Assert.That(Shell.Must($"dpkg-deb -I '{Deb()}' conffiles").Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EquivalentTo(new[] { "/etc/fastxtr/mapserver.conf", "/etc/fastxtr/xtr.conf", "/etc/fastxtr/xtr.dataplane" }), "an upgrade keeps the operator's edits");
    }

    [Test]
    public void Units_PassSystemdAnalyzeVerify_AndAskForWhatEachRoleNeedsOnly()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"fxtest-units-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            Shell.Must($"dpkg-deb -x '{Deb()}' '{dir}/root'");
            // verify checks that ExecStart's executable exists, so the copies point into the unpacked tree.
            foreach (var unit in Directory.GetFiles(Path.Combine(dir, "root/lib/systemd/system")))
                File.WriteAllText(Path.Combine(dir, Path.GetFileName(unit)), File.ReadAllText(unit).Replace("/usr/bin/fastxtr", $"{dir}/root/usr/bin/fastxtr", StringComparison.Ordinal));
            var verify = Shell.Sh($"cd '{dir}' && systemd-analyze verify {string.Join(' ', new[] { "dataplane", "agent", "mapserver", "rtr" }.Select(r => $"'{dir}/fastxtr-{r}@test.service'"))}");
            Assert.That((verify.Code, verify.Err.Trim(), verify.Out.Trim()), Is.EqualTo((0, "", "")), "systemd-analyze verify is silent when nothing is wrong");

            string Unit(string role) => File.ReadAllText(Path.Combine(dir, $"fastxtr-{role}@.service"));
            foreach (var role in new[] { "dataplane", "agent", "mapserver", "rtr" })
                Assert.That(Unit(role), Does.Contain("\nType=notify\n").And.Contain("\nUser=fastxtr\n").And.Contain("\nProtectSystem=strict\n").And.Contain("\nNoNewPrivileges=yes\n").And.Contain("\nRestart=on-failure\n"));
            Assert.That(Unit("dataplane"), Does.Contain("\nAmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW\n").And.Contain("\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n"));
            Assert.That(Unit("mapserver"), Does.Contain("\nCapabilityBoundingSet=\n").And.Contain("\nExecReload=/bin/kill -HUP $MAINPID\n"), "mapserver: no capability; reload by SIGHUP");
            Assert.That(Unit("agent"), Does.Contain("\nCapabilityBoundingSet=CAP_NET_RAW\n").And.Contain("\nExecReload=/bin/kill -HUP $MAINPID\n"), "agent: a raw socket for NAT keep-alives only; reload by SIGHUP");
            Assert.That(Unit("rtr"), Does.Contain("\nAmbientCapabilities=CAP_NET_RAW\n").And.Contain("\nCapabilityBoundingSet=CAP_NET_RAW\n"), "rtr: raw sending sockets, no TUN");
            Assert.That(Unit("agent"), Does.Contain("\nAfter=network-online.target fastxtr-dataplane@%i.service\n"), "the agent starts after its data plane");
            var security = Shell.Sh($"systemd-analyze security --offline=yes --threshold=50 '{dir}/fastxtr-mapserver@test.service' '{dir}/fastxtr-agent@test.service' '{dir}/fastxtr-dataplane@test.service' '{dir}/fastxtr-rtr@test.service'");
            Assert.That(security.Code, Is.EqualTo(0), "each unit's exposure is at most 5.0 of 10: " + security.All);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Install_IntoAScratchRoot_RunsFromThere_AndPurgeRemovesTheConfiguration()
    {
        Shell.RequireRoot("installing into a scratch root sets file owners and needs root");
        string root = Path.Combine(Path.GetTempPath(), $"fxtest-root-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "var/lib/dpkg/info"));
            Directory.CreateDirectory(Path.Combine(root, "var/lib/dpkg/updates"));
            Directory.CreateDirectory(Path.Combine(root, "etc"));
            File.WriteAllText(Path.Combine(root, "var/lib/dpkg/status"), "");
            File.WriteAllText(Path.Combine(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n");
            File.WriteAllText(Path.Combine(root, "etc/group"), "root:x:0:\n");
            File.WriteAllText(Path.Combine(root, "etc/shadow"), "root:*:19000:0:99999:7:::\n");
            File.WriteAllText(Path.Combine(root, "etc/gshadow"), "root:*::\n");
            // The scratch root has none of the dependencies (libc and friends come from this machine when it runs).
            var install = Shell.Sh($"dpkg --root='{root}' --force-depends --force-script-chrootless -i '{Deb()}'", 120_000);
            Assert.That(install.Code, Is.EqualTo(0), install.All);
            Assert.That(Shell.Must($"dpkg --root='{root}' -s fastxtr"), Does.Contain("Status: install ok installed"));

            var version = Shell.Run(Path.Combine(root, "usr/bin/fastxtr"), ["--version"]);
            Assert.That(version.Code, Is.EqualTo(0), version.All);
            Assert.That(version.Out, Does.Match(@"^\d+\.\d+\.\d+\+[0-9a-f]{40}\n$"), "the version with the commit it was built from");
            var help = Shell.Run(Path.Combine(root, "usr/bin/fastxtr"), ["mapserver", "--help"]);
            Assert.That(help.Out, Does.Contain("SIGHUP"));

            string passwd = File.ReadAllText(Path.Combine(root, "etc/passwd"));
            Assert.That(passwd, Does.Match(@"\nfastxtr:x:\d+:\d+::/nonexistent:/usr/sbin/nologin\n"), "the services' system user");
            string gid = File.ReadAllLines(Path.Combine(root, "etc/group")).Single(l => l.StartsWith("fastxtr:", StringComparison.Ordinal)).Split(':')[2];
            Assert.That(Shell.Must($"stat -c '%a %u:%g' '{root}/etc/fastxtr' '{root}/etc/fastxtr/mapserver.conf'").Split('\n', StringSplitOptions.RemoveEmptyEntries),
                Is.EqualTo(new[] { $"750 0:{gid}", $"640 0:{gid}" }), "secrets readable by the services' group only");

            Assert.That(Shell.Sh($"dpkg --root='{root}' --force-script-chrootless --purge fastxtr", 60_000).Code, Is.EqualTo(0));
            Assert.That(File.Exists(Path.Combine(root, "usr/lib/fastxtr/fastxtr")), Is.False);
            Assert.That(Directory.Exists(Path.Combine(root, "etc/fastxtr")), Is.False, "purge removes the configuration");
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}
