using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace BatchNorm;

/// <summary>Keras' naming conventions: "random_normal", "RandomNormal" and "randomnormal" name the same thing.</summary>
internal static class KerasNames
{
    public static string Normalize(string name) =>
        new string(name.Where(ch => ch != '_').ToArray()).ToLowerInvariant();

    public static string Describe(string className, IReadOnlyDictionary<string, object?> config) =>
        config.Count == 0
            ? className
            : className + "(" + string.Join(", ", config.Select(kv => kv.Key + "=" + Format(kv.Value))) + ")";

    private static string Format(object? value) => value switch
    {
        null => "None",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        _ => System.Convert.ToString(value, CultureInfo.InvariantCulture) ?? "None",
    };
}
