using System.Globalization;
using System.Net;
using System.Text;

namespace FastXtr.Common;

/// <summary>
/// One line of a configuration file as every role reads it: its words (whitespace separates, double quotes keep
/// spaces, <c>#</c> starts a comment), whether it is indented (a block's member), and its JSON value: from the first
/// <c>{</c> outside quotes to the end of the line, kept whole (a <c>#</c> inside it is not a comment).
/// </summary>
public sealed record ConfigLine(string Source, int Number, bool Indented, List<string> Words, string? Json)
{
    public string Where => $"{Source} line {Number}";

    public int Count => Words.Count;

    public string this[int index] => Words[index];

    /// <summary>A refusal naming the file and line.</summary>
    public ConfigException Error(string message) => new($"{Where}: {message}");

    /// <summary>Refuses the line unless it has exactly <paramref name="count"/> words, showing <paramref name="form"/>.</summary>
    public void Expect(int count, string form)
    {
        if (Count != count) throw Error($"expected '{form}'");
    }
}

/// <summary>The line-oriented configuration files of the agent and the Map-Server: one reader, one set of value parsers.</summary>
public static class ConfigReader
{
    /// <summary>
    /// Hands each line that has words to <paramref name="apply"/>, in order. A malformed value (a number, an address)
    /// becomes a <see cref="ConfigException"/> naming the line; <paramref name="apply"/> refuses with <see cref="ConfigLine.Error"/>.
    /// </summary>
    public static void Read(IReadOnlyList<string> lines, string source, Action<ConfigLine> apply)
    {
        for (int n = 0; n < lines.Count; n++)
        {
            var line = Split(lines[n], source, n + 1);
            if (line.Count == 0) continue;
            try { apply(line); }
            catch (Exception e) when (e is FormatException or OverflowException or ArgumentOutOfRangeException or IndexOutOfRangeException)
            {
                throw line.Error(e.Message);
            }
        }
    }

    public static ConfigLine Split(string text, string source, int number)
    {
        var words = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false, any = false;
        string? json = null;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"') quoted = false;
                else sb.Append(c);
                continue;
            }
            if (c == '#') break;
            if (c == '{')
            {
                json = text[i..].Trim();
                break;
            }
            if (c == '"') { quoted = true; any = true; continue; }
            if (char.IsWhiteSpace(c))
            {
                if (any) { words.Add(sb.ToString()); sb.Clear(); any = false; }
                continue;
            }
            sb.Append(c);
            any = true;
        }
        if (quoted) throw new ConfigException($"{source} line {number}: unterminated quote");
        if (any) words.Add(sb.ToString());
        return new ConfigLine(source, number, text.Length > 0 && char.IsWhiteSpace(text[0]), words, json);
    }

    /// <summary>"ADDRESS[:PORT]" ("[::1]:4342" for IPv6); a missing port is <paramref name="defaultPort"/>.</summary>
    public static IPEndPoint Endpoint(string text, int defaultPort)
    {
        if (IPEndPoint.TryParse(text, out var ep))
        {
            if (ep.Port == 0) ep.Port = defaultPort;
            return ep;
        }
        throw new FormatException($"'{text}' is not ADDRESS[:PORT] (e.g. 127.0.0.1:4342 or [::1]:4342)");
    }

    /// <summary>A number within [min, max], or a <see cref="FormatException"/> that says the range.</summary>
    public static double Number(string s, double min, double max, string what)
    {
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || v < min || v > max)
            throw new FormatException($"{what} '{s}' must be a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}");
        return v;
    }

    /// <summary>"on" or "off".</summary>
    public static bool OnOff(ConfigLine line, int index, string what) => line[index] switch
    {
        "on" => true,
        "off" => false,
        _ => throw line.Error($"{what} takes on or off"),
    };
}
