using Microsoft.Extensions.Logging;

namespace FastXtr.Common.Logging;

/// <summary>
/// The roles' log sink behind <see cref="ILogger"/>: one line per message, <c>fastxtr ROLE: message</c>, with
/// <c>warning:</c> or <c>error:</c> after the role for those levels. Information and below go to the standard
/// output and warnings and errors to the standard error (what a service manager and a terminal both expect);
/// messages below <see cref="MinimumLevel"/> are not formatted at all. Lines from many threads never interleave.
/// With <paramref name="priorityPrefixes"/> (the streams go to the systemd journal), each line starts with its
/// syslog priority as <c>&lt;N&gt;</c> (sd-daemon(3)), which the journal takes as the entry's level and strips.
/// </summary>
public sealed class LineLoggerProvider(string role, TextWriter output, TextWriter errors, LogLevel minimumLevel = LogLevel.Information, bool priorityPrefixes = false) : ILoggerProvider
{
    private readonly object _lock = new();

    public LogLevel MinimumLevel { get; } = minimumLevel;

    public ILogger CreateLogger(string categoryName) => new LineLogger(this);

    /// <summary>A logger for the role (the category is not printed: the role names the process).</summary>
    public ILogger CreateLogger() => new LineLogger(this);

    public void Dispose()
    {
        lock (_lock)
        {
            output.Flush();
            errors.Flush();
        }
    }

    private void Write(LogLevel level, string message, Exception? exception)
    {
        string tag = level switch
        {
            LogLevel.Warning => "warning: ",
            LogLevel.Error or LogLevel.Critical => "error: ",
            _ => "",
        };
        string line = exception is null ? $"fastxtr {role}: {tag}{message}" : $"fastxtr {role}: {tag}{message}: {exception.Message}";
        if (priorityPrefixes) line = $"<{SyslogPriority(level)}>{line}";
        var to = level >= LogLevel.Warning ? errors : output;
        lock (_lock) to.WriteLine(line);
    }

    /// <summary>The syslog priority of a level (RFC 5424 §6.2.1 severities): 3 error, 4 warning, 6 informational, 7 debug.</summary>
    public static int SyslogPriority(LogLevel level) => level switch
    {
        LogLevel.Critical => 2,
        LogLevel.Error => 3,
        LogLevel.Warning => 4,
        LogLevel.Information => 6,
        _ => 7,
    };

    private sealed class LineLogger(LineLoggerProvider provider) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= provider.MinimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            provider.Write(logLevel, formatter(state, exception), exception);
        }
    }
}
