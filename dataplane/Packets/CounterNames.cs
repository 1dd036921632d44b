namespace FastXtr.Packets;

/// <summary>How counters are named wherever they are printed or exported, by every role.</summary>
public static class CounterNames
{
    /// <summary>"DropNoMapping" as "drop-no-mapping": how counters are named wherever they are printed.</summary>
    public static string Kebab(string s)
    {
        var sb = new System.Text.StringBuilder(s.Length + 8);
        for (int i = 0; i < s.Length; i++)
        {
            if (i > 0 && char.IsUpper(s[i]) && !char.IsUpper(s[i - 1])) sb.Append('-');
            sb.Append(char.ToLowerInvariant(s[i]));
        }
        return sb.ToString();
    }
}
