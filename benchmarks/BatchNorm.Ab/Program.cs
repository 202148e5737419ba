using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.Loader;

namespace BatchNorm.Ab;

/// <summary>
/// Two builds of the library in one process: each build's driver (benchmarks/BatchNorm.AbDriver, compiled against it)
/// is loaded into its own <see cref="AssemblyLoadContext"/>, and the two take turns with a copy of the same bytes on the
/// same arrays, in ABBA order. Prints the fastest round of each, in microseconds (nanoseconds below 10 us) and against
/// the copy. Both builds see
/// the same pages, so what differs between processes (the physical pages, the placement of the arrays) cancels.
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        var options = new Dictionary<string, string>();
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            options[args[i].TrimStart('-')] = args[i + 1];
        }

        if (!options.TryGetValue("a", out string? dirA) || !options.TryGetValue("b", out string? dirB))
        {
            Console.Error.WriteLine(
                "usage: --a DIR --b DIR [--shape 256,1024] [--type float|double] [--modes inference,training,backward] [--axis -1|1] [--rounds 12]");
            return 2;
        }

        int[] shape = options.GetValueOrDefault("shape", "256,1024").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        bool isDouble = options.GetValueOrDefault("type", "float") == "double";
        string[] modes = options.GetValueOrDefault("modes", "inference,training,backward").Split(',');
        int axis = int.Parse(options.GetValueOrDefault("axis", "-1"), CultureInfo.InvariantCulture);
        int rounds = int.Parse(options.GetValueOrDefault("rounds", "12"), CultureInfo.InvariantCulture);

        int n = shape.Aggregate(1, (a, b) => a * b);
        var random = new Random(1);
        Array x = isDouble ? new double[n] : new float[n];
        Array dy = isDouble ? new double[n] : new float[n];
        Array y = isDouble ? new double[n] : new float[n];
        Array dx = isDouble ? new double[n] : new float[n];
        for (int i = 0; i < n; i++)
        {
            x.SetValue(isDouble ? random.NextDouble() : (object)(float)random.NextDouble(), i);
            dy.SetValue(isDouble ? random.NextDouble() - 0.5 : (object)((float)random.NextDouble() - 0.5f), i);
        }

        MethodInfo makeA = Load(dirA, "A");
        MethodInfo makeB = Load(dirB, "B");
        Action copy = x is double[] dx64 ? () => dx64.AsSpan().CopyTo((double[])y) : () => ((float[])x).AsSpan().CopyTo((float[])y);
        var calls = new List<(string Name, Action Call)> { ("copy", copy) };
        foreach (string mode in modes)
        {
            calls.Add(("A:" + mode, (Action)makeA.Invoke(null, [mode, x, y, dy, dx, shape, axis])!));
            calls.Add(("B:" + mode, (Action)makeB.Invoke(null, [mode, x, y, dy, dx, shape, axis])!));
        }

        double[] best = Enumerable.Repeat(double.MaxValue, calls.Count).ToArray();
        foreach (var (_, call) in calls)
        {
            for (int i = 0; i < 3; i++)
            {
                call();
            }
        }

        int repeats = Math.Max(1, 2_000_000 / n);
        for (int r = 0; r < rounds; r++)
        {
            for (int j = 0; j < calls.Count; j++)
            {
                int k = r % 2 == 0 ? j : calls.Count - 1 - j;
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < repeats; i++)
                {
                    calls[k].Call();
                }

                best[k] = Math.Min(best[k], watch.Elapsed.TotalMicroseconds / repeats);
            }
        }

        Console.Write(FormattableString.Invariant($"[{string.Join(",", shape)}] {(isDouble ? "double" : "float")}:"));
        for (int j = 0; j < calls.Count; j++)
        {
            Console.Write(FormattableString.Invariant($"  {calls[j].Name} {(best[j] < 10 ? $"{best[j] * 1000:F1} ns" : $"{best[j]:F1} us")}"));
            Console.Write(j == 0 ? string.Empty : FormattableString.Invariant($" ({best[j] / best[0]:F2}x)"));
        }

        Console.WriteLine();
        return 0;
    }

    private static MethodInfo Load(string directory, string name)
    {
        var context = new BuildContext(Path.GetFullPath(directory), name);
        Assembly driver = context.LoadFromAssemblyPath(Path.Combine(context.Directory, "BatchNorm.AbDriver.dll"));
        return driver.GetType("BatchNorm.AbDriver.Driver", throwOnError: true)!.GetMethod("Make")!;
    }

    /// <summary>Loads a build's assemblies from its own directory, and everything else (the runtime) from the default context.</summary>
    private sealed class BuildContext(string directory, string name) : AssemblyLoadContext(name)
    {
        public string Directory { get; } = directory;

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            string path = Path.Combine(Directory, assemblyName.Name + ".dll");
            return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
        }
    }
}
