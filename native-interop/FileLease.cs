namespace FastXtr.NativeInterop;

/// <summary>
/// An exclusive lease on a file: <c>flock(LOCK_EX | LOCK_NB)</c> on a descriptor of our own. The kernel releases it
/// when the descriptor closes, which includes the holder's death by any signal, so a lease can never outlive its
/// process. flock locks belong to the open file description: two leases on one file conflict even inside one process.
/// </summary>
public sealed class FileLease : IDisposable
{
    private int _fd;

    private FileLease(int fd) => _fd = fd;

    /// <summary>Takes the lease, or returns null when another holder has it. Throws when the file cannot be opened.</summary>
    public static FileLease? TryTake(string path)
    {
        int fd = Libc.open(path, Linux.O_RDWR | Linux.O_CLOEXEC, 0);
        if (fd < 0) throw new NativeException($"open {path} for its writer lease", Libc.LastError);
        if (Libc.flock(fd, Linux.LOCK_EX | Linux.LOCK_NB) == 0) return new FileLease(fd);
        int errno = Libc.LastError;
        Libc.close(fd);
        if (errno == Linux.EAGAIN) return null; // EWOULDBLOCK: held by someone else
        throw new NativeException($"flock {path}", errno);
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.close(fd);
    }
}
