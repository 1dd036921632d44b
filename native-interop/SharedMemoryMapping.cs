namespace FastXtr.NativeInterop;

/// <summary>
/// A file in /dev/shm (tmpfs) mapped MAP_SHARED into this process: the region a data plane and its control agent
/// share. Either process may create it; the other attaches. The mapping is released on Dispose; the file stays
/// until <see cref="Unlink"/>, so a restarted process finds the map-cache where it was.
/// </summary>
public sealed unsafe class SharedMemoryMapping : IDisposable
{
    private byte* _base;

    private readonly (ulong Device, ulong Inode) _identity;

    private SharedMemoryMapping(string path, byte* basePointer, long length, bool created, (ulong, ulong) identity)
    {
        Path = path;
        _base = basePointer;
        Length = length;
        Created = created;
        _identity = identity;
    }

    public string Path { get; }
    public long Length { get; }
    /// <summary>True when this call created the file (its content is zero-filled).</summary>
    public bool Created { get; }
    public byte* Base => _base != null ? _base : throw new ObjectDisposedException(nameof(SharedMemoryMapping));

    /// <summary>
    /// Removes the private files (<c>PATH.creating-PID-*</c>) that a creator killed before publishing left behind:
    /// those of processes that no longer exist. A live creator's file is left alone.
    /// </summary>
    private static void RemoveAbandoned(string path)
    {
        string? dir = System.IO.Path.GetDirectoryName(path);
        if (dir is null || !Directory.Exists(dir)) return;
        string prefix = System.IO.Path.GetFileName(path) + ".creating-";
        foreach (string file in Directory.EnumerateFiles(dir, prefix + "*"))
        {
            string rest = System.IO.Path.GetFileName(file)[prefix.Length..];
            int dash = rest.IndexOf('-', StringComparison.Ordinal);
            if (dash <= 0 || !int.TryParse(rest.AsSpan(0, dash), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid)) continue;
            if (Processes.IsRunning(pid)) continue;
            try { File.Delete(file); }
            catch (IOException) { } // another creator removed it first
            catch (UnauthorizedAccessException) { } // another user's: not ours to remove
        }
    }

    /// <summary>/dev/shm/NAME for a bare name; a path with a '/' is used as it is.</summary>
    public static string PathFor(string name) => name.Contains('/', StringComparison.Ordinal) ? name : "/dev/shm/" + name;

    /// <summary>
    /// Creates a zero-filled file of <paramref name="length"/> bytes under a private name beside
    /// <see cref="PathFor"/>(<paramref name="name"/>), and maps it; nobody else sees it until <see cref="Publish"/>
    /// gives it its name, so an attaching process never maps a file whose header is still being written. Fails with
    /// EEXIST when the name is taken.
    /// </summary>
    public static SharedMemoryMapping Create(string name, long length)
    {
        string path = PathFor(name);
        if (File.Exists(path)) throw new NativeException($"create shared memory {path}", Linux.EEXIST);
        RemoveAbandoned(path);
        string hidden = $"{path}.creating-{Environment.ProcessId}-{Random.Shared.Next():x8}";
        int fd = Libc.open(hidden, Linux.O_RDWR | Linux.O_CREAT | Linux.O_EXCL | Linux.O_CLOEXEC, 0x180 /* 0600 */);
        if (fd < 0) throw new NativeException($"create shared memory {hidden}", Libc.LastError);
        try
        {
            if (Libc.ftruncate(fd, length) != 0) throw new NativeException($"size shared memory {hidden} to {length} bytes", Libc.LastError);
            var mapping = Map(path, fd, length, created: true);
            mapping._hiddenPath = hidden;
            return mapping;
        }
        catch
        {
            File.Delete(hidden);
            throw;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    private string? _hiddenPath;

    /// <summary>
    /// Gives a created file its name (link(2), which never replaces an existing file: EEXIST when another process
    /// published first) and removes the private one. Call once its content is ready.
    /// </summary>
    public void Publish()
    {
        if (_hiddenPath is null) return;
        try
        {
            if (Libc.link(_hiddenPath, Path) != 0) throw new NativeException($"create shared memory {Path}", Libc.LastError);
        }
        finally
        {
            File.Delete(_hiddenPath);
            _hiddenPath = null;
        }
    }

    /// <summary>Maps an existing file at its current size.</summary>
    public static SharedMemoryMapping Attach(string name)
    {
        string path = PathFor(name);
        int fd = Libc.open(path, Linux.O_RDWR | Linux.O_CLOEXEC, 0);
        if (fd < 0) throw new NativeException($"attach shared memory {path}", Libc.LastError);
        try
        {
            long length = new FileInfo(path).Length;
            if (length <= 0) throw new NativeException($"attach shared memory {path}: the file is empty", Linux.EINVAL);
            return Map(path, fd, length, created: false);
        }
        finally
        {
            Libc.close(fd);
        }
    }

    private static SharedMemoryMapping Map(string path, int fd, long length, bool created)
    {
        StatBuf st;
        if (Libc.fstat(fd, &st) != 0) throw new NativeException($"fstat {path}", Libc.LastError);
        void* p = Libc.mmap(null, (nuint)length, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED, fd, 0);
        if (p == (void*)-1) throw new NativeException($"mmap {path} ({length} bytes)", Libc.LastError);
        return new SharedMemoryMapping(path, (byte*)p, length, created, (st.Device, st.Inode));
    }

    /// <summary>
    /// True while the file at <see cref="Path"/> is the one this mapping holds; false once it was removed or replaced
    /// by a new file (a data plane restarted on a fresh region), when the mapping still works but nobody else sees it.
    /// </summary>
    public bool IsCurrent()
    {
        StatBuf st;
        return Libc.stat_path(Path, &st) == 0 && st.Device == _identity.Device && st.Inode == _identity.Inode;
    }

    public static bool Unlink(string name)
    {
        string path = PathFor(name);
        if (!File.Exists(path)) return false;
        File.Delete(path);
        return true;
    }

    public void Dispose()
    {
        if (_hiddenPath is not null) { File.Delete(_hiddenPath); _hiddenPath = null; }
        if (_base == null) return;
        Libc.munmap(_base, (nuint)Length);
        _base = null;
    }
}
