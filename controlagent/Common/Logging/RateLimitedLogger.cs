using Microsoft.Extensions.Logging;

namespace FastXtr.Common.Logging;

/// <summary>
/// For log lines that hostile or broken peers can cause at packet rate (malformed messages, failed authentication):
/// at most one line per reason per second, and the next line that gets through says how many were held back.
/// </summary>
public sealed class RateLimitedLogger(ILogger logger)
{
    private readonly Dictionary<string, (long Last, int Suppressed)> _state = [];

    public void Warning(string reason, string message) => Write(LogLevel.Warning, reason, message);

    private void Write(LogLevel level, string reason, string message)
    {
        if (!logger.IsEnabled(level)) return;
        long now = Environment.TickCount64;
        int suppressed;
        lock (_state)
        {
            _state.TryGetValue(reason, out var s);
            if (s.Last != 0 && now - s.Last < 1000)
            {
                _state[reason] = (s.Last, s.Suppressed + 1);
                return;
            }
            _state[reason] = (now, 0);
            suppressed = s.Suppressed;
        }
#pragma warning disable CA1848, CA2254 // the text is built once for a line that is already rate-limited; a template buys nothing here
        logger.Log(level, suppressed > 0 ? $"{message} ({suppressed} more like it suppressed)" : message);
#pragma warning restore CA1848, CA2254
    }
}
