namespace FastXtr.NativeInterop;

/// <summary>
/// Processes: whether one recorded by pid (a data plane in its region's header, a creator in a file name) still runs,
/// and this process's own SIGHUP disposition.
/// </summary>
public static class Processes
{
    /// <summary>
    /// Gives SIGHUP its default disposition back when the process was started with it ignored (nohup, or a shell's
    /// job that ignores it), before the runtime is asked to handle it: .NET does not deliver a signal whose
    /// disposition was SIG_IGN when the handler was registered, so a role started under nohup would never reload.
    /// </summary>
    public static void TakeBackSighup() => Libc.signal(Linux.SIGHUP, Linux.SIG_DFL);

    /// <summary>
    /// True when <paramref name="pid"/> exists and has not exited: a zombie (state Z, or X) is a process that has
    /// exited and whose parent has not collected it yet. Where PID 1 does not reap orphans (some containers), a killed
    /// data plane stays one for good, and counting it as running would refuse its restart for ever.
    /// </summary>
    public static bool IsRunning(int pid)
    {
        if (pid <= 0) return false;
        string stat;
        try { stat = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
        // "PID (COMM) STATE ...": the command may hold spaces and parentheses; the state follows the last ')'.
        int close = stat.LastIndexOf(')');
        if (close < 0 || close + 2 >= stat.Length) return true;
        return stat[close + 2] is not ('Z' or 'X');
    }
}
