namespace FastXtr.NativeInterop;

/// <summary>
/// Whether a standard stream is connected to the systemd journal: systemd sets JOURNAL_STREAM to the device and inode
/// ("DEV:INODE") of the stream it connected, and a process checks its own descriptor against them, since a child
/// inherits the variable with its streams redirected elsewhere (sd_journal_stream_fd(3), systemd.exec(5)).
/// </summary>
public static unsafe class Journal
{
    public const int StandardOutput = 1;
    public const int StandardError = 2;

    public static bool IsConnected(int fd)
    {
        string? value = Environment.GetEnvironmentVariable("JOURNAL_STREAM");
        if (string.IsNullOrEmpty(value)) return false;
        var parts = value.Split(':');
        if (parts.Length != 2 || !ulong.TryParse(parts[0], out ulong device) || !ulong.TryParse(parts[1], out ulong inode)) return false;
        StatBuf st;
        return Libc.fstat(fd, &st) == 0 && st.Device == device && st.Inode == inode;
    }
}
