using System.Text;

namespace FastXtr.Tests.Support;

/// <summary>Annotated hex for golden vectors: "//" starts a comment; whitespace is ignored.</summary>
public static class Hex
{
    public static byte[] Parse(string annotated)
    {
        var sb = new StringBuilder();
        foreach (var rawLine in annotated.Split('\n'))
        {
            int comment = rawLine.IndexOf("//", StringComparison.Ordinal);
            string line = comment >= 0 ? rawLine[..comment] : rawLine;
            foreach (char c in line)
                if (!char.IsWhiteSpace(c)) sb.Append(c);
        }
        return Convert.FromHexString(sb.ToString());
    }

    public static string Format(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes).ToLowerInvariant();
}
