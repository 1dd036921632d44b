using System.Runtime.InteropServices;

namespace FastXtr.NativeInterop;

/// <summary>
/// The libc calls FastXtr makes. Tmds.LibC supplies most of them; what it lacks (recvmmsg, sendmmsg, ioctls, writev,
/// stat/fstat, flock) is bound here. Every other project reaches the kernel only through this folder.
/// </summary>
internal static unsafe partial class Libc
{
    private const string LibcName = "libc";

    [LibraryImport(LibcName, SetLastError = true)]
    public static partial int recvmmsg(int fd, MMsgHdr* msgvec, uint vlen, int flags, void* timeout);

    [LibraryImport(LibcName, SetLastError = true)]
    public static partial int sendmmsg(int fd, MMsgHdr* msgvec, uint vlen, int flags);

    [LibraryImport(LibcName, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int ioctl_ifreq(int fd, nuint request, IfReq* ifr);

    /// <summary>An ioctl whose argument is a value, not a pointer (TUNSETOFFLOAD).</summary>
    [LibraryImport(LibcName, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int ioctl_value(int fd, nuint request, nuint argument);

    [LibraryImport(LibcName, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int ioctl_int(int fd, nuint request, int* argument);

    [LibraryImport(LibcName, SetLastError = true)]
    public static partial nint writev(int fd, IoVec* iov, int iovcnt);

    /// <summary>signal(2): sets a signal's disposition; returns the previous one (SIG_ERR, -1, on failure).</summary>
    [LibraryImport(LibcName, EntryPoint = "signal", SetLastError = true)]
    public static partial nint signal(int signum, nint handler);

    [LibraryImport(LibcName, SetLastError = true)]
    public static partial int fstat(int fd, StatBuf* buffer);

    [LibraryImport(LibcName, EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int stat_path(string path, StatBuf* buffer);

    [LibraryImport(LibcName, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int link(string existing, string created);

    [LibraryImport(LibcName, SetLastError = true)]
    public static partial int flock(int fd, int operation);

    /// <summary>syscall(SYS_bpf, cmd, attr, size): glibc has no bpf() wrapper.</summary>
    [LibraryImport(LibcName, EntryPoint = "syscall", SetLastError = true)]
    public static partial long syscall_bpf(long number, long command, BpfAttr* attr, long size);

    /// <summary>syscall(SYS_sched_getattr/SYS_sched_setattr, ...): glibc has no wrappers.</summary>
    [LibraryImport(LibcName, EntryPoint = "syscall", SetLastError = true)]
    public static partial long syscall_sched_attr(long number, int pid, SchedAttr* attr, uint sizeOrFlags, uint flags);

    [LibraryImport(LibcName, SetLastError = true)]
    public static partial int getsockopt(int fd, int level, int name, void* value, uint* length);

    [LibraryImport(LibcName, SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint nfds, int timeout);

    public static int open(string path, int flags, uint mode)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes) return Tmds.Linux.LibC.open(p, flags, (Tmds.Linux.mode_t)mode);
    }

    public static int close(int fd) => Tmds.Linux.LibC.close(fd);
    public static long read(int fd, void* buffer, nuint count) => Tmds.Linux.LibC.read(fd, buffer, (Tmds.Linux.size_t)count);
    public static long write(int fd, void* buffer, nuint count) => Tmds.Linux.LibC.write(fd, buffer, (Tmds.Linux.size_t)count);
    public static int ftruncate(int fd, long length) => Tmds.Linux.LibC.ftruncate(fd, length);
    public static void* mmap(void* addr, nuint length, int prot, int flags, int fd, long offset) => Tmds.Linux.LibC.mmap(addr, (Tmds.Linux.size_t)length, prot, flags, fd, offset);
    public static int munmap(void* addr, nuint length) => Tmds.Linux.LibC.munmap(addr, (Tmds.Linux.size_t)length);
    public static int socket(int domain, int type, int protocol) => Tmds.Linux.LibC.socket(domain, type, protocol);
    public static int bind(int fd, void* address, uint length) => Tmds.Linux.LibC.bind(fd, (Tmds.Linux.sockaddr*)address, length);
    public static int setsockopt(int fd, int level, int name, void* value, uint length) => Tmds.Linux.LibC.setsockopt(fd, level, name, value, length);
    public static long sendto(int fd, void* buffer, nuint length, int flags, void* address, uint addressLength) =>
        Tmds.Linux.LibC.sendto(fd, buffer, (Tmds.Linux.size_t)length, flags, (Tmds.Linux.sockaddr*)address, addressLength);
    public static long recvfrom(int fd, void* buffer, nuint length, int flags, void* address, uint* addressLength) =>
        Tmds.Linux.LibC.recvfrom(fd, buffer, (Tmds.Linux.size_t)length, flags, (Tmds.Linux.sockaddr*)address, (Tmds.Linux.socklen_t*)addressLength);
    public static long sendmsg(int fd, MsgHdr* message, int flags) => Tmds.Linux.LibC.sendmsg(fd, (Tmds.Linux.msghdr*)message, flags);
    public static int getpid() => Tmds.Linux.LibC.getpid();
    public static uint geteuid() => Tmds.Linux.LibC.geteuid();

    public static int sched_setaffinity_one(int cpu)
    {
        // A cpu_set_t of 1024 bits, with only `cpu` set, for the calling thread (pid 0).
        ulong* set = stackalloc ulong[16];
        for (int i = 0; i < 16; i++) set[i] = 0;
        set[cpu / 64] = 1UL << (cpu % 64);
        return Tmds.Linux.LibC.sched_setaffinity(0, 128, (Tmds.Linux.cpu_set_t*)set);
    }

    /// <summary>The errno of the last call made through this class.</summary>
    public static int LastError => Marshal.GetLastPInvokeError() is var e and not 0 ? e : Tmds.Linux.LibC.errno;
}

/// <summary>A failed system call, with the errno, its text and what we were doing.</summary>
public sealed class NativeException : Exception
{
    public NativeException(string operation, int errno)
        : base($"{operation}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
    {
        Operation = operation;
        Errno = errno;
    }

    public NativeException() : this("unknown operation", 0) { }
    public NativeException(string message) : base(message) { Operation = message; }
    public NativeException(string message, Exception inner) : base(message, inner) { Operation = message; }

    public string Operation { get; } = "";
    public int Errno { get; }
}
