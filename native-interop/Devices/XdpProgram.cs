using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace FastXtr.NativeInterop;

/// <summary>
/// The XDP program of --mode af-xdp on one EID-facing interface, and its XSKMAP (one AF_XDP socket per receive queue).
/// The program is ours, a few dozen instructions assembled here and loaded with the bpf() system call, so the data
/// plane needs neither clang nor libbpf/libxdp at run time. It redirects to the queue's socket only what the data plane
/// carries: unicast IPv4 and IPv6 frames, except IPv4 addressed to the interface itself and ICMPv6 neighbour discovery
/// (types 133-137); everything else (ARP, ND, broadcasts, multicast, other protocols) goes on to the kernel, which keeps
/// answering ARP and ND. A queue with no socket passes its frames to the kernel as well (the redirect's default action).
/// The program is attached through a BPF link: the link belongs to this process, so the program is detached when the
/// process exits for any reason, a SIGKILL included, and the next start finds the interface clean.
/// </summary>
public sealed unsafe class XdpProgram : IDisposable
{
    private readonly int _mapFd;
    private readonly int _progFd;
    private readonly int _linkFd;

    public string Interface { get; }
    public int InterfaceIndex { get; }
    /// <summary>True when the program runs in the driver (native XDP); false for the generic (skb) hook.</summary>
    public bool Native { get; }

    private XdpProgram(string name, int ifindex, int mapFd, int progFd, int linkFd, bool native)
    {
        Interface = name;
        InterfaceIndex = ifindex;
        _mapFd = mapFd;
        _progFd = progFd;
        _linkFd = linkFd;
        Native = native;
    }

    /// <summary>
    /// Loads the program for <paramref name="queues"/> receive queues and attaches it to interface
    /// <paramref name="ifindex"/>, natively where the driver can, else on the generic hook.
    /// <paramref name="localIpv4"/> (host order; 0 for none) is the interface's own address, whose traffic stays the
    /// kernel's. Errors say what is wrong in the operator's terms.
    /// </summary>
    public static XdpProgram Attach(string name, int ifindex, int queues, uint localIpv4) =>
        Attach(name, ifindex, queues, "fastxtr_eid", map => Assemble(map, localIpv4));

    /// <summary>
    /// The underlay's program (--xdp-underlay): only unfragmented IPv4/UDP without options to
    /// <paramref name="rloc"/>:<paramref name="port"/> (host order) goes to the sockets; fragments, control messages and
    /// everything else stay the kernel's (its UDP socket on the data port still takes what the program passes).
    /// </summary>
    public static XdpProgram AttachUnderlay(string name, int ifindex, int queues, uint rloc, ushort port) =>
        Attach(name, ifindex, queues, "fastxtr_rloc", map => AssembleUnderlay(map, rloc, port));

    private static XdpProgram Attach(string name, int ifindex, int queues, string programName, Func<int, BpfInsn[]> assemble)
    {
        int mapFd = CreateXskMap(name, queues);
        int progFd = -1;
        try
        {
            progFd = Load(name, assemble(mapFd), programName);
            int linkFd = Link(progFd, ifindex, Linux.XDP_FLAGS_DRV_MODE, out int errno);
            bool native = linkFd >= 0;
            if (!native && errno is Linux.EOPNOTSUPP or Linux.EINVAL)
                linkFd = Link(progFd, ifindex, Linux.XDP_FLAGS_SKB_MODE, out errno);
            if (linkFd < 0)
            {
                throw errno switch
                {
                    Linux.EBUSY or Linux.EEXIST => new NativeException($"interface {name} already has an XDP program attached (another data plane, or a tool such as xdp-loader or ip link ... xdp): detach it first (ip link set dev {name} xdp off)", errno),
                    Linux.EPERM or Linux.EACCES => new NativeException($"attaching an XDP program to {name}: needs CAP_NET_ADMIN and CAP_BPF (run as root)", errno),
                    _ => new NativeException($"attaching the XDP program to {name}", errno),
                };
            }
            return new XdpProgram(name, ifindex, mapFd, progFd, linkFd, native);
        }
        catch
        {
            if (progFd >= 0) Libc.close(progFd);
            Libc.close(mapFd);
            throw;
        }
    }

    /// <summary>Sends queue <paramref name="queue"/>'s frames to the AF_XDP socket <paramref name="xskFd"/>.</summary>
    public void Register(int queue, int xskFd)
    {
        BpfAttr attr = default;
        uint key = (uint)queue;
        int value = xskFd;
        Put32(&attr, BpfAttrOffset.ElementMapFd, (uint)_mapFd);
        Put64(&attr, BpfAttrOffset.ElementKey, (ulong)&key);
        Put64(&attr, BpfAttrOffset.ElementValue, (ulong)&value);
        if (Bpf(Linux.BPF_MAP_UPDATE_ELEM, &attr) < 0)
            throw new NativeException($"registering the AF_XDP socket of queue {queue} of {Interface} in the XSKMAP", Libc.LastError);
    }

    private static int CreateXskMap(string name, int queues)
    {
        BpfAttr attr = default;
        Put32(&attr, BpfAttrOffset.MapType, Linux.BPF_MAP_TYPE_XSKMAP);
        Put32(&attr, BpfAttrOffset.KeySize, 4);
        Put32(&attr, BpfAttrOffset.ValueSize, 4);
        Put32(&attr, BpfAttrOffset.MaxEntries, (uint)queues);
        PutName(&attr, BpfAttrOffset.MapName, "fastxtr_xsks");
        int fd = (int)Bpf(Linux.BPF_MAP_CREATE, &attr);
        if (fd >= 0) return fd;
        int e = Libc.LastError;
        throw e is Linux.EPERM or Linux.EACCES
            ? new NativeException($"creating the XSKMAP for {name}: needs CAP_BPF and CAP_NET_ADMIN (run as root)", e)
            : new NativeException($"creating the XSKMAP for {name} (kernel without CONFIG_XDP_SOCKETS?)", e);
    }

    private static int Load(string name, BpfInsn[] program, string programName)
    {
        byte[] license = "Dual BSD/GPL\0"u8.ToArray();
        const int LogBytes = 1 << 16;
        byte* log = (byte*)NativeMemory.AllocZeroed(LogBytes);
        try
        {
            fixed (BpfInsn* insns = program)
            fixed (byte* lic = license)
            {
                BpfAttr attr = default;
                Put32(&attr, BpfAttrOffset.ProgramType, Linux.BPF_PROG_TYPE_XDP);
                Put32(&attr, BpfAttrOffset.InstructionCount, (uint)program.Length);
                Put64(&attr, BpfAttrOffset.Instructions, (ulong)insns);
                Put64(&attr, BpfAttrOffset.License, (ulong)lic);
                Put32(&attr, BpfAttrOffset.LogLevel, 1); // log_level: the verifier explains a refusal
                Put32(&attr, BpfAttrOffset.LogSize, LogBytes);
                Put64(&attr, BpfAttrOffset.LogBuffer, (ulong)log);
                PutName(&attr, BpfAttrOffset.ProgramName, programName);
                Put32(&attr, BpfAttrOffset.ExpectedAttachType, Linux.BPF_XDP);
                int fd = (int)Bpf(Linux.BPF_PROG_LOAD, &attr);
                if (fd >= 0) return fd;
                int e = Libc.LastError;
                string verifier = Marshal.PtrToStringUTF8((nint)log)?.Trim() ?? "";
                throw e is Linux.EPERM or Linux.EACCES
                    ? new NativeException($"loading the XDP program for {name}: needs CAP_BPF (run as root)", e)
                    : new NativeException($"the kernel refused the XDP program for {name}{(verifier.Length > 0 ? ": " + verifier[Math.Max(0, verifier.Length - 400)..] : "")}", e);
            }
        }
        finally { NativeMemory.Free(log); }
    }

    private static int Link(int progFd, int ifindex, uint flags, out int errno)
    {
        BpfAttr attr = default;
        Put32(&attr, BpfAttrOffset.LinkProgramFd, (uint)progFd);
        Put32(&attr, BpfAttrOffset.LinkTargetInterface, (uint)ifindex);
        Put32(&attr, BpfAttrOffset.LinkAttachType, Linux.BPF_XDP);
        Put32(&attr, BpfAttrOffset.LinkFlags, flags);
        int fd = (int)Bpf(Linux.BPF_LINK_CREATE, &attr);
        errno = fd < 0 ? Libc.LastError : 0;
        return fd;
    }

    /// <summary>
    /// The program. r1 is the xdp_md context; r2 data, r3 data_end; every read is preceded by the bounds check the
    /// verifier asks for. Frames are compared in network byte order as loaded little-endian (IPv4's EtherType 0x0800
    /// reads as 0x0008).
    /// </summary>
    internal static BpfInsn[] Assemble(int mapFd, uint localIpv4)
    {
        var a = new BpfAssembler();
        a.LoadContext32(2, 0);             // r2 = ctx->data
        a.LoadContext32(3, 4);             // r3 = ctx->data_end
        a.Move(4, 2);
        a.AddImmediate(4, 34);             // Ethernet + a minimal IPv4 header
        a.JumpIfGreater(4, 3, "pass");
        a.LoadByte(5, 2, 0);               // destination MAC, first byte
        a.AndImmediate(5, 1);
        a.JumpIfNotEqualImmediate(5, 0, "pass"); // broadcast, multicast
        a.LoadHalf(5, 2, 12);              // EtherType
        a.JumpIfEqualImmediate(5, 0x0008, "ipv4");
        a.JumpIfNotEqualImmediate(5, 0xDD86, "pass");
        // IPv6: neighbour discovery stays the kernel's.
        a.Move(4, 2);
        a.AddImmediate(4, 55);             // Ethernet + IPv6 + the ICMPv6 type
        a.JumpIfGreater(4, 3, "redirect"); // shorter than that: ours to count as malformed
        a.LoadByte(5, 2, 20);              // next header
        a.JumpIfNotEqualImmediate(5, 58, "redirect");
        a.LoadByte(5, 2, 54);              // ICMPv6 type
        a.JumpIfLessImmediate(5, 133, "redirect");
        a.JumpIfGreaterImmediate(5, 137, "redirect");
        a.Jump("pass");
        a.Label("ipv4");
        if (localIpv4 != 0)
        {
            a.LoadWord(5, 2, 30);          // destination address
            a.JumpIfEqualImmediate32(5, (int)BinaryPrimitives.ReverseEndianness(localIpv4), "pass");
        }
        a.Label("redirect");
        return RedirectOrPass(a, mapFd);
    }

    /// <summary>
    /// The underlay's program: Ethernet, IPv4 with a 20-byte header (0x45), UDP, no fragment bits (MF, offset), the
    /// destination address and port ours; else the kernel's.
    /// </summary>
    internal static BpfInsn[] AssembleUnderlay(int mapFd, uint rloc, ushort port)
    {
        var a = new BpfAssembler();
        a.LoadContext32(2, 0);
        a.LoadContext32(3, 4);
        a.Move(4, 2);
        a.AddImmediate(4, 42);             // Ethernet + IPv4 + UDP
        a.JumpIfGreater(4, 3, "pass");
        a.LoadHalf(5, 2, 12);
        a.JumpIfNotEqualImmediate(5, 0x0008, "pass");
        a.LoadByte(5, 2, 14);
        a.JumpIfNotEqualImmediate(5, 0x45, "pass");
        a.LoadByte(5, 2, 23);              // protocol
        a.JumpIfNotEqualImmediate(5, 17, "pass");
        a.LoadHalf(5, 2, 20);              // flags and fragment offset, loaded little-endian
        a.AndImmediate(5, 0xFF3F);         // MF and the offset (DF may be set)
        a.JumpIfNotEqualImmediate(5, 0, "pass");
        a.LoadWord(5, 2, 30);
        a.JumpIfNotEqualImmediate32(5, (int)BinaryPrimitives.ReverseEndianness(rloc), "pass");
        a.LoadHalf(5, 2, 36);              // destination port
        a.JumpIfNotEqualImmediate(5, BinaryPrimitives.ReverseEndianness(port), "pass");
        return RedirectOrPass(a, mapFd);
    }

    /// <summary>
    /// The end both programs share: here, the frame goes to the socket of its receive queue (or to the kernel when
    /// the queue has none: the redirect's default action); at "pass", to the kernel.
    /// </summary>
    private static BpfInsn[] RedirectOrPass(BpfAssembler a, int mapFd)
    {
        a.LoadContext32(2, 16);            // r2 = ctx->rx_queue_index
        a.LoadMapFd(1, mapFd);
        a.MoveImmediate(3, Linux.XDP_PASS);
        a.Call(Linux.BPF_FUNC_redirect_map);
        a.Exit();
        a.Label("pass");
        a.MoveImmediate(0, Linux.XDP_PASS);
        a.Exit();
        return a.Finish();
    }

    private static long Bpf(int command, BpfAttr* attr) => Libc.syscall_bpf(Linux.SYS_bpf, command, attr, sizeof(BpfAttr));

    private static void Put32(BpfAttr* attr, int offset, uint value) => *(uint*)(attr->Bytes + offset) = value;
    private static void Put32(BpfAttr* attr, int offset, int value) => *(int*)(attr->Bytes + offset) = value;
    private static void Put64(BpfAttr* attr, int offset, ulong value) => *(ulong*)(attr->Bytes + offset) = value;

    private static void PutName(BpfAttr* attr, int offset, string name)
    {
        byte[] bytes = Encoding.ASCII.GetBytes(name);
        for (int i = 0; i < Math.Min(bytes.Length, 15); i++) attr->Bytes[offset + i] = bytes[i];
    }

    public void Dispose()
    {
        Libc.close(_linkFd);
        Libc.close(_progFd);
        Libc.close(_mapFd);
    }
}

/// <summary>Where the bpf() commands we use read their fields in union bpf_attr (&lt;linux/bpf.h&gt;; checked by the layout test).</summary>
internal static class BpfAttrOffset
{
    // BPF_MAP_CREATE
    public const int MapType = 0, KeySize = 4, ValueSize = 8, MaxEntries = 12, MapName = 28;
    // BPF_MAP_UPDATE_ELEM
    public const int ElementMapFd = 0, ElementKey = 8, ElementValue = 16;
    // BPF_PROG_LOAD
    public const int ProgramType = 0, InstructionCount = 4, Instructions = 8, License = 16, LogLevel = 24, LogSize = 28, LogBuffer = 32, ProgramName = 48, ExpectedAttachType = 68;
    // BPF_LINK_CREATE
    public const int LinkProgramFd = 0, LinkTargetInterface = 4, LinkAttachType = 8, LinkFlags = 12;
}

/// <summary>
/// The few eBPF instructions <see cref="XdpProgram"/> uses (&lt;linux/bpf_common.h&gt;, &lt;linux/bpf.h&gt;), with
/// forward jumps to labels resolved when the program is finished.
/// </summary>
internal sealed class BpfAssembler
{
    private const byte Ldx = 0x01, Ld = 0x00, Alu64 = 0x07, Jmp = 0x05, Jmp32 = 0x06;
    private const byte W = 0x00, H = 0x08, B = 0x10, Dw = 0x18, Mem = 0x60, Imm = 0x00;
    private const byte K = 0x00, X = 0x08;
    private const byte Add = 0x00, And = 0x50, Mov = 0xb0;
    private const byte Ja = 0x00, Jeq = 0x10, Jgt = 0x20, Jne = 0x50, Jlt = 0xa0, Call_ = 0x80, Exit_ = 0x90;

    private readonly List<BpfInsn> _code = [];
    private readonly Dictionary<string, int> _labels = [];
    private readonly List<(int At, string Label)> _fixups = [];

    private void Emit(byte code, int dst, int src, short offset, int immediate) =>
        _code.Add(new BpfInsn { Code = code, Registers = (byte)(dst | (src << 4)), Offset = offset, Immediate = immediate });

    private void EmitJump(byte code, int dst, int src, int immediate, string label)
    {
        _fixups.Add((_code.Count, label));
        Emit(code, dst, src, 0, immediate);
    }

    public void LoadContext32(int dst, short offset) => Emit(Ldx | Mem | W, dst, 1, offset, 0);
    public void LoadWord(int dst, int src, short offset) => Emit(Ldx | Mem | W, dst, src, offset, 0);
    public void LoadHalf(int dst, int src, short offset) => Emit(Ldx | Mem | H, dst, src, offset, 0);
    public void LoadByte(int dst, int src, short offset) => Emit(Ldx | Mem | B, dst, src, offset, 0);
    public void Move(int dst, int src) => Emit(Alu64 | Mov | X, dst, src, 0, 0);
    public void MoveImmediate(int dst, int immediate) => Emit(Alu64 | Mov | K, dst, 0, 0, immediate);
    public void AddImmediate(int dst, int immediate) => Emit(Alu64 | Add | K, dst, 0, 0, immediate);
    public void AndImmediate(int dst, int immediate) => Emit(Alu64 | And | K, dst, 0, 0, immediate);
    public void JumpIfGreater(int dst, int src, string label) => EmitJump(Jmp | Jgt | X, dst, src, 0, label);
    public void JumpIfEqualImmediate(int dst, int immediate, string label) => EmitJump(Jmp | Jeq | K, dst, 0, immediate, label);
    public void JumpIfEqualImmediate32(int dst, int immediate, string label) => EmitJump(Jmp32 | Jeq | K, dst, 0, immediate, label);
    public void JumpIfNotEqualImmediate32(int dst, int immediate, string label) => EmitJump(Jmp32 | Jne | K, dst, 0, immediate, label);
    public void JumpIfNotEqualImmediate(int dst, int immediate, string label) => EmitJump(Jmp | Jne | K, dst, 0, immediate, label);
    public void JumpIfLessImmediate(int dst, int immediate, string label) => EmitJump(Jmp | Jlt | K, dst, 0, immediate, label);
    public void JumpIfGreaterImmediate(int dst, int immediate, string label) => EmitJump(Jmp | Jgt | K, dst, 0, immediate, label);
    public void Jump(string label) => EmitJump(Jmp | Ja, 0, 0, 0, label);
    public void Call(int helper) => Emit(Jmp | Call_, 0, 0, 0, helper);
    public void Exit() => Emit(Jmp | Exit_, 0, 0, 0, 0);

    /// <summary>A 64-bit load of a map's fd (two instructions), which the kernel replaces with the map's address.</summary>
    public void LoadMapFd(int dst, int mapFd)
    {
        Emit(Ld | Imm | Dw, dst, Linux.BPF_PSEUDO_MAP_FD, 0, mapFd);
        Emit(0, 0, 0, 0, 0);
    }

    public void Label(string name) => _labels[name] = _code.Count;

    public BpfInsn[] Finish()
    {
        var code = _code.ToArray();
        foreach (var (at, label) in _fixups)
            code[at].Offset = (short)(_labels[label] - at - 1);
        return code;
    }
}
