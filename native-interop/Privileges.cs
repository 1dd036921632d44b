namespace FastXtr.NativeInterop;

/// <summary>What the running process may do, for a clear refusal before a command that needs root starts.</summary>
public static class Privileges
{
    /// <summary>True when the effective user id is 0 (namespaces, TUN devices and raw sockets need it).</summary>
    public static bool IsRoot => Libc.geteuid() == 0;
}
