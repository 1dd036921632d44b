using System.Net;
using System.Text;

namespace FastXtr.Common;

/// <summary>The pieces of the line-oriented configuration files that every role reads the same way.</summary>
public static class ConfigText
{
    /// <summary>"ADDRESS[:PORT]" ("[::1]:4342" for IPv6); a missing port is <paramref name="defaultPort"/>.</summary>
    public static IPEndPoint ParseEndpoint(string text, int defaultPort)
    {
        if (IPEndPoint.TryParse(text, out var ep))
        {
            if (ep.Port == 0) ep.Port = defaultPort;
            return ep;
        }
        throw new FormatException($"'{text}' is not ADDRESS[:PORT] (e.g. 127.0.0.1:4342 or [::1]:4342)");
    }

    /// <summary>A line's words: whitespace separates, double quotes keep spaces, "#" starts a comment.</summary>
    public static List<string> Tokenize(string line, string source, int number)
    {
        var tokens = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false, any = false;
        foreach (char c in line)
        {
            if (quoted)
            {
                if (c == '"') quoted = false;
                else sb.Append(c);
                continue;
            }
            if (c == '#') break;
            if (c == '"') { quoted = true; any = true; continue; }
            if (char.IsWhiteSpace(c))
            {
                if (any) { tokens.Add(sb.ToString()); sb.Clear(); any = false; }
                continue;
            }
            sb.Append(c);
            any = true;
        }
        if (quoted) throw new ConfigException($"{source} line {number}: unterminated quote");
        if (any) tokens.Add(sb.ToString());
        return tokens;
    }
}
