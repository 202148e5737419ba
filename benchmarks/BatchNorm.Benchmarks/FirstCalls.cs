using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Numerics;
using BatchNorm.Tensors;

namespace BatchNorm.Benchmarks;

/// <summary>
/// The first calls of a fresh process: <c>dotnet run -c Release --project benchmarks/BatchNorm.Benchmarks -- --first-calls</c>.
/// </summary>
/// <remarks>
/// BenchmarkDotNet and the alternating harness warm each case up first, so they time the code the runtime settles on.
/// A service's first requests meet the code before that: the runtime compiles a method quickly and unoptimized for its
/// first calls (tier 0) and recompiles it optimized once it has been called about 30 times. This mode times one case's
/// first calls, one at a time, in the process that makes them, and sets them against the median of its last ten calls.
/// It times one case per process, since a second case would find the first one's code already compiled; run it once per
/// case (benchmarks/README.md has the loop). No assertion is made on any of it.
/// </remarks>
internal static class FirstCalls
{
    private const string Usage =
        "usage: --first-calls [--shape TEXT (default [32,56,56,64])] [--type float|double (default float)] [--mode inference|training|backward (default training)] [--calls N (default 60, at least 12)] [--threads T (1, -1 for every core, or N; default 1)]";

    /// <summary>Runs the mode with the arguments after <c>--first-calls</c>; returns the process exit code.</summary>
    public static int Run(IReadOnlyList<string> args)
    {
        string shapeText = "[32,56,56,64]", type = "float", mode = "training";
        int calls = 60, threads = 1;
        for (int i = 0; i < args.Count; i += 2)
        {
            string? value = i + 1 < args.Count ? args[i + 1] : null;
            bool ok = value is not null;
            switch (args[i])
            {
                case "--shape" when ok:
                    shapeText = value!;
                    break;
                case "--type" when value is "float" or "double":
                    type = value;
                    break;
                case "--mode" when value is not null && Alternating.Modes.Contains(value):
                    mode = value;
                    break;
                case "--calls":
                    ok = int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out calls) && calls >= 12;
                    break;
                case "--threads" when Alternating.TryParseThreads(value, out int[] parsed) && parsed.Length == 1:
                    threads = parsed[0];
                    break;
                default:
                    ok = false;
                    break;
            }

            if (!ok)
            {
                return Alternating.BadArgument(args[i], Usage);
            }
        }

        ShapeCase? shape = ShapeCase.All.FirstOrDefault(s => s.Name.Contains(shapeText, StringComparison.Ordinal));
        if (shape is null)
        {
            Console.Error.WriteLine("no shape matches; the shapes are: " + string.Join(", ", ShapeCase.All.Select(s => s.Name)));
            return 2;
        }

        double[] times = type == "float" ? Measure<float>(shape, mode, threads, calls, out double copy) : Measure<double>(shape, mode, threads, calls, out copy);
        double steady = Alternating.Median(times[^10..]);
        Console.WriteLine($"# first calls: {shape.Name} {type} {mode}, threads {Alternating.Threads(threads)}, {Environment.ProcessorCount} cores, .NET {Environment.Version}");
        Console.WriteLine($"steady (median of the last 10 calls): {Alternating.Time(steady)}; a copy of the same bytes: {Alternating.Time(copy)}");
        Console.WriteLine("| calls | mean time | over steady |");
        Console.WriteLine("|---|---:|---:|");
        Row("1", times[..1]);
        Row("2-5", times[1..5]);
        Row("6-10", times[5..10]);
        for (int from = 10; from < times.Length - 10; from += 10)
        {
            int to = Math.Min(from + 10, times.Length - 10);
            Row($"{from + 1}-{to}", times[from..to]);
        }

        int last = Math.Max(10, times.Length - 10);
        Row($"{last + 1}-{times.Length}", times[last..]);
        return 0;

        void Row(string label, double[] part) => Console.WriteLine($"| {label} | {Alternating.Time(part.Average())} | {part.Average() / steady:F2}x |");
    }

    /// <summary>
    /// Times each of the first <paramref name="calls"/> calls of <paramref name="mode"/>, one at a time (the backward after
    /// one untimed training call, which it needs); <paramref name="copy"/> is the time of a copy of the same bytes, made
    /// afterwards: the fastest of five timed loops, per copy.
    /// </summary>
    private static double[] Measure<T>(ShapeCase shape, string mode, int threads, int calls, out double copy)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        T[] input = shape.Data<T>();
        var x = new NdArray<T>(input, shape.Shape);
        var y = new NdArray<T>(new T[x.Length], shape.Shape);
        T[] dy = shape.OutputGradient<T>();
        var dx = new T[x.Length];
        var layer = new BatchNormalization<T>(axis: shape.Axis) { MaxDegreeOfParallelism = threads };
        T[] dgamma = [], dbeta = [];

        // Every page of the outputs written once before the first timed call, so that it times code, not page faults.
        input.CopyTo(y.Span);
        input.CopyTo(dx, 0);
        Action call = mode switch
        {
            "inference" => () => layer.Call(x, y, training: false),
            "training" => () => layer.Call(x, y, training: true),
            _ => () => layer.Backward(dy, dx, dgamma, dbeta),
        };
        if (mode == "backward")
        {
            layer.Call(x, y, training: true);
            dgamma = new T[layer.Channels];
            dbeta = new T[layer.Channels];
        }

        var times = new double[calls];
        for (int i = 0; i < calls; i++)
        {
            long start = Stopwatch.GetTimestamp();
            call();
            times[i] = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
        }

        // The copy in loops of enough calls to time a small tensor's (one call of [8,16] is below the clock's resolution).
        int reps = Math.Max(1, 1_000_000 / input.Length);
        copy = double.MaxValue;
        for (int i = 0; i < 5; i++)
        {
            long start = Stopwatch.GetTimestamp();
            for (int r = 0; r < reps; r++)
            {
                input.CopyTo(y.Span);
            }

            copy = Math.Min(copy, Stopwatch.GetElapsedTime(start).TotalNanoseconds / reps);
        }

        return times;
    }
}
