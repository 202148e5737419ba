using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Numerics;
using BatchNorm.Tensors;

namespace BatchNorm.Benchmarks;

/// <summary>
/// The alternating harness: <c>dotnet run -c Release --project benchmarks/BatchNorm.Benchmarks -- --alternate</c>.
/// </summary>
/// <remarks>
/// BenchmarkDotNet times the copy baseline and the layer minutes apart, and on a shared machine a copy of the same
/// bytes can take 1.0 ms in one minute and 1.8 ms in the next. This harness times the public API in one process, on
/// the same shapes and data as the BenchmarkDotNet classes, taking turns with a copy of the same bytes: each round is a
/// timed loop of copies and a timed loop of layer calls per thread setting (<c>--threads 1,-1</c> gives two), in that
/// order in even rounds and the reverse in odd ones. It prints, per case, the fastest round of each layer over the
/// fastest round of the copy (the machine at its quietest for both) and the ratio of the medians; with two settings,
/// also the second's time over the first's. No assertion is made on any of it.
/// <para>
/// <c>--peers onednn</c> adds oneDNN (<see cref="OneDnnBatchNorm"/>, float32 only) to the same rounds, one per thread
/// setting after the layers, on the layer's input; it prints oneDNN's ratios, the layer's time over oneDNN's, and each
/// one's largest error against a float64 reference written out in <see cref="Reference"/> (y, or dx for the backward), so
/// that both are seen to compute the same thing.
/// </para>
/// <para>
/// <c>--floors</c> adds, last in the same rounds, the mode's traffic floor (<see cref="TrafficFloor"/>: plain loops moving
/// the bytes the layer's passes must move, on one thread) and prints it against the copy and the first layer's time over
/// it: how far each kernel is from what its traffic alone costs on this machine.
/// </para>
/// <para>
/// <c>--short-runs</c> times <see cref="ShapeCase.ShortRuns"/> (channels first, 7x7 and 14x14 maps) instead of the
/// issue's five shapes.
/// </para>
/// </remarks>
internal static class Alternating
{
    private const string Usage =
        "usage: --alternate [--rounds N (default 16)] [--threads T[,T...] (each 1, -1 for every core, or N; default 1)] [--shape TEXT ...] [--type float|double] [--mode inference|training|backward] [--peers onednn] [--floors] [--short-runs]";

    /// <summary>Each timed loop runs at least this long (and at least three calls).</summary>
    private static readonly TimeSpan RoundTime = TimeSpan.FromMilliseconds(20);

    /// <summary>Calls before the rounds, so that tiered compilation has settled on its final code.</summary>
    private static readonly TimeSpan WarmUpTime = TimeSpan.FromMilliseconds(400);

    /// <summary>The modes both this harness and <see cref="FirstCalls"/> time.</summary>
    internal static readonly string[] Modes = ["inference", "training", "backward"];

    /// <summary>Runs the harness with the arguments after <c>--alternate</c>; returns the process exit code.</summary>
    public static int Run(IReadOnlyList<string> args)
    {
        int rounds = 16;
        int[] threads = [1];
        var shapes = new List<string>();
        string? type = null, mode = null;
        bool peers = false, floors = false, shortRuns = false;
        for (int i = 0; i < args.Count; i += 2)
        {
            string? value = i + 1 < args.Count ? args[i + 1] : null;
            bool ok = value is not null;
            switch (args[i])
            {
                case "--floors":
                    floors = ok = true;
                    i--; // a flag: no value follows
                    break;
                case "--short-runs":
                    shortRuns = ok = true;
                    i--;
                    break;
                case "--rounds":
                    ok = int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out rounds) && rounds >= 1;
                    break;
                case "--threads":
                    ok = TryParseThreads(value, out threads);
                    break;
                case "--shape" when ok:
                    shapes.Add(value!);
                    break;
                case "--type" when value is "float" or "double":
                    type = value;
                    break;
                case "--mode" when value is not null && Modes.Contains(value):
                    mode = value;
                    break;
                case "--peers" when value is "onednn":
                    peers = true;
                    break;
                default:
                    ok = false;
                    break;
            }

            if (!ok)
            {
                return BadArgument(args[i], Usage);
            }
        }

        ShapeCase[] set = shortRuns ? ShapeCase.ShortRuns : ShapeCase.All;
        ShapeCase[] cases = set.Where(s => shapes.Count == 0 || shapes.Any(f => s.Name.Contains(f, StringComparison.Ordinal))).ToArray();
        if (cases.Length == 0)
        {
            Console.Error.WriteLine("no shape matches; the shapes are: " + string.Join(", ", set.Select(s => s.Name)));
            return 2;
        }

        string[] modes = mode is null ? Modes : [mode];
        string settings = string.Join(", ", threads.Select(Threads));
        Console.WriteLine($"# alternating harness: {rounds} rounds, threads {settings}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {Environment.OSVersion}");
        if (peers && !OneDnnBatchNorm.IsAvailable(out string reason))
        {
            Console.WriteLine($"# oneDNN: not timed: {reason}");
            peers = false;
        }

        // The contenders after the copy: the layer on each thread setting, then oneDNN on each (float32 cases only), then
        // the traffic floor.
        string[] names =
            [.. threads.Select(t => $"layer ({Threads(t)})"), .. peers ? threads.Select(t => $"oneDNN ({Threads(t)})") : [], .. floors ? ["floor (1)"] : Array.Empty<string>()];
        Console.WriteLine("| shape | type | mode | copy, fastest | " + string.Join(" | ", names.Select(n => $"{n}, fastest | ratio of fastest | ratio of medians")) + (peers ? " | layer, max abs error | oneDNN, max abs error |" : " |"));
        Console.WriteLine("|---|---|---|---:|" + string.Concat(names.Select(_ => "---:|---:|---:|")) + (peers ? "---:|---:|" : ""));
        var results = new List<(ShapeCase Shape, string Column, Result Result)>();
        foreach (ShapeCase shape in cases)
        {
            foreach (string t in type is null ? ["float", "double"] : new[] { type })
            {
                foreach (string m in modes)
                {
                    Result r = t == "float" ? Measure<float>(shape, m, threads, rounds, peers, floors) : Measure<double>(shape, m, threads, rounds, peers: false, floors);
                    Console.WriteLine(
                        $"| {shape.Name} | {t} | {m} | {Time(r.CopyFastest)} | " +
                        string.Join(" | ", names.Select((_, i) => Contender(r, i, threads.Length, peers, floors) is int k ? $"{Time(r.Fastest[k])} | {r.Fastest[k] / r.CopyFastest:F2}x | {r.Median[k] / r.CopyMedian:F2}x" : "- | - | -")) +
                        (peers ? $" | {Error(r.LayerError)} | {Error(r.PeerError)} |" : " |"));
                    results.Add((shape, $"{t} {m}", r));
                }
            }
        }

        // The same figures laid out as benchmarks/README.md's table, one per thread setting: fastest-round ratios, and
        // the per-call cost in ns for [8,16], whose copy of 512 bytes costs less than the call itself.
        string[] columns = results.Select(r => r.Column).Distinct().ToArray();
        for (int i = 0; i < threads.Length; i++)
        {
            Console.WriteLine();
            Console.WriteLine($"threads {Threads(threads[i])}, against a copy:");
            Table(r => AgainstCopy(r.Shape, r.Result, i));
            if (peers)
            {
                int column = threads.Length + i;
                Console.WriteLine();
                Console.WriteLine($"oneDNN, threads {Threads(threads[i])}, against a copy:");
                Table(r => Contender(r.Result, column, threads.Length, peers, floors) is int peer ? AgainstCopy(r.Shape, r.Result, peer) : "-");
                Console.WriteLine();
                Console.WriteLine($"threads {Threads(threads[i])}, the layer's time over oneDNN's, fastest rounds (below 1: the layer is faster):");
                Table(r => Contender(r.Result, column, threads.Length, peers, floors) is int peer ? $"{r.Result.Fastest[i] / r.Result.Fastest[peer]:F2}" : "-");
            }
        }

        if (floors)
        {
            Console.WriteLine();
            Console.WriteLine("the traffic floor (one thread), against a copy:");
            Table(r => AgainstCopy(r.Shape, r.Result, r.Result.Fastest.Length - 1));
            Console.WriteLine();
            Console.WriteLine($"threads {Threads(threads[0])}, the layer's time over the floor's, fastest rounds:");
            Table(r => $"{r.Result.Fastest[0] / r.Result.Fastest[^1]:F2}");
        }

        if (threads.Length == 2)
        {
            Console.WriteLine();
            Console.WriteLine($"threads {Threads(threads[1])} against threads {Threads(threads[0])}, time of the fastest rounds (below 1: faster):");
            Table(r => $"{r.Result.Fastest[1] / r.Result.Fastest[0]:F2}");
        }

        return 0;

        void Table(Func<(ShapeCase Shape, Result Result), string> cell)
        {
            Console.WriteLine("| shape | " + string.Join(" | ", columns) + " |");
            Console.WriteLine("|---|" + string.Concat(columns.Select(_ => "---:|")));
            foreach (ShapeCase shape in cases)
            {
                Console.WriteLine($"| {shape.Name} | " + string.Join(" | ", results.Where(r => r.Shape == shape).Select(r => cell((r.Shape, r.Result)))) + " |");
            }
        }
    }

    /// <summary>
    /// Where the <paramref name="column"/>-th named contender is in a result's arrays, or null when that case did not time
    /// it (oneDNN in a float64 case): the layers come first, then oneDNN's when timed, then the floor.
    /// </summary>
    private static int? Contender(Result result, int column, int layers, bool peers, bool floors)
    {
        bool peerTimed = result.Fastest.Length - (floors ? 1 : 0) > layers;
        if (column < layers)
        {
            return column;
        }

        if (peers && column < 2 * layers)
        {
            return peerTimed ? column : null;
        }

        return floors ? result.Fastest.Length - 1 : null;
    }

    private static string Error(double error) => double.IsNaN(error) ? "-" : error.ToString("G3", CultureInfo.InvariantCulture);

    /// <summary>A ratio to the copy's fastest round, or for [8,16], whose copy costs less than a call, nanoseconds per call.</summary>
    private static string AgainstCopy(ShapeCase shape, Result result, int contender) =>
        shape.Shape.Length < 4096 ? $"{result.Fastest[contender]:F0} ns" : $"{result.Fastest[contender] / result.CopyFastest:F2}x";

    /// <summary>Reports a bad argument and the usage on stderr; returns the exit code for it, 2.</summary>
    internal static int BadArgument(string near, string usage)
    {
        Console.Error.WriteLine($"bad argument near '{near}'");
        Console.Error.WriteLine(usage);
        return 2;
    }

    internal static string Threads(int t) => t == -1 ? "all" : t.ToString(CultureInfo.InvariantCulture);

    internal static bool TryParseThreads(string? value, out int[] threads)
    {
        threads = [];
        if (value is null)
        {
            return false;
        }

        var parsed = new List<int>();
        foreach (string part in value.Split(','))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int t) || (t != -1 && t < 1))
            {
                return false;
            }

            parsed.Add(t);
        }

        threads = [.. parsed];
        return true;
    }

    internal static string Time(double nanoseconds) =>
        nanoseconds >= 1e6 ? $"{nanoseconds / 1e6:F3} ms" : nanoseconds >= 1e3 ? $"{nanoseconds / 1e3:F2} us" : $"{nanoseconds:F0} ns";

    /// <summary>
    /// Per-call nanoseconds: the copy's fastest and median rounds, and each contender's (the layer on each thread setting,
    /// then oneDNN on each when timed, then the traffic floor when asked for); the layer's and oneDNN's largest absolute
    /// errors against the float64 reference (NaN when oneDNN was not timed).
    /// </summary>
    private sealed record Result(double CopyFastest, double CopyMedian, double[] Fastest, double[] Median, double LayerError, double PeerError);

    /// <summary>
    /// Sets up one case as the BenchmarkDotNet classes do, one layer per thread setting (and with
    /// <paramref name="peers"/>, float32 only, oneDNN on the same input; with <paramref name="floors"/>, the traffic floor
    /// last, whose output is checked after the rounds), then times them against the copy in alternating rounds: copy first
    /// and the rest in order in even rounds, the reverse in odd ones.
    /// </summary>
    private static Result Measure<T>(ShapeCase shape, string mode, int[] threads, int rounds, bool peers, bool floors)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        T[] input = shape.Data<T>();
        var x = new NdArray<T>(input, shape.Shape);
        var output = new T[x.Length];
        var y = new NdArray<T>(output, shape.Shape);
        T[] dy = shape.OutputGradient<T>();
        var dx = new T[x.Length];
        var actions = new List<Action> { () => x.ReadOnlySpan.CopyTo(y.Span) };
        BatchNormalization<T>? first = null;
        foreach (int t in threads)
        {
            var layer = new BatchNormalization<T>(axis: shape.Axis) { MaxDegreeOfParallelism = t };
            layer.Call(x, y, training: true);
            first ??= layer;
            var dgamma = new T[layer.Channels];
            var dbeta = new T[layer.Channels];
            actions.Add(mode switch
            {
                "inference" => () => layer.Call(x, y, training: false),
                "training" => () => layer.Call(x, y, training: true),
                _ => () => layer.Backward(dy, dx, dgamma, dbeta),
            });
        }

        // oneDNN, one instance per thread setting, each created on the thread count it runs with.
        var oneDnn = new List<OneDnnBatchNorm>();
        using var disposer = new Disposer(oneDnn);
        if (peers && typeof(T) == typeof(float))
        {
            foreach (int t in threads)
            {
                var peer = new OneDnnBatchNorm(
                    t == -1 ? Environment.ProcessorCount : t, shape, mode, (float)first!.Epsilon, (float[])(object)input, (float[])(object)dy,
                    Floats(first.Gamma!), Floats(first.Beta!), Floats(first.MovingMean), Floats(first.MovingVariance));
                oneDnn.Add(peer);
                actions.Add(peer.Run);
            }
        }

        if (floors)
        {
            actions.Add(TrafficFloor.For(mode, input, output, dy, dx));
        }

        int[] calls = actions.Select(WarmUp).ToArray();
        double[][] times = actions.Select(_ => new double[rounds]).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            for (int j = 0; j < actions.Count; j++)
            {
                int k = round % 2 == 0 ? j : actions.Count - 1 - j;
                times[k][round] = Time(actions[k], calls[k]);
            }
        }

        double layerError = double.NaN, peerError = double.NaN;
        if (oneDnn.Count > 0)
        {
            // One more call of the first layer and of the first oneDNN, each against the reference: y for the forward
            // modes, dx for the backward.
            OneDnnBatchNorm peer = oneDnn[0];
            actions[1]();
            peer.Run();
            double[] expected = Reference.Output(
                shape, mode, first!.Epsilon, Doubles<T>(input), Doubles<T>(dy), Doubles(first.Gamma!.ReadOnlySpan), Doubles(first.Beta!.ReadOnlySpan),
                Doubles(first.MovingMean.ReadOnlySpan), Doubles(first.MovingVariance.ReadOnlySpan));
            layerError = MaxError(expected, mode == "backward" ? dx : y.ReadOnlySpan);
            peerError = MaxError<float>(expected, mode == "backward" ? peer.Dx : peer.Y);
        }

        if (floors)
        {
            actions[^1]();
            TrafficFloor.Check(mode, input, output, dy, dx);
        }

        return new Result(
            times[0].Min(), Median(times[0]), times.Skip(1).Select(t => t.Min()).ToArray(), times.Skip(1).Select(Median).ToArray(), layerError, peerError);
    }

    /// <summary>Disposes the oneDNN instances of a case when it is done.</summary>
    private readonly struct Disposer(List<OneDnnBatchNorm> instances) : IDisposable
    {
        public void Dispose() => instances.ForEach(i => i.Dispose());
    }

    private static double[] Doubles<T>(ReadOnlySpan<T> values)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var result = new double[values.Length];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = double.CreateTruncating(values[i]);
        }

        return result;
    }

    private static double MaxError<T>(double[] expected, ReadOnlySpan<T> actual)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        double error = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            error = Math.Max(error, Math.Abs(double.CreateTruncating(actual[i]) - expected[i]));
        }

        return error;
    }

    /// <summary>A copy of a float32 layer's weights, for oneDNN (only float32 cases get a peer).</summary>
    private static float[] Floats<T>(NdArray<T> values)
        where T : unmanaged => (float[])(object)values.ReadOnlySpan.ToArray();

    /// <summary>Calls <paramref name="action"/> for <see cref="WarmUpTime"/>; returns how many calls fill <see cref="RoundTime"/>.</summary>
    private static int WarmUp(Action action)
    {
        var clock = Stopwatch.StartNew();
        long calls = 0;
        while (clock.Elapsed < WarmUpTime || calls < 50)
        {
            action();
            calls++;
        }

        double perCall = clock.Elapsed.TotalNanoseconds / calls;
        return (int)Math.Clamp(Math.Ceiling(RoundTime.TotalNanoseconds / perCall), 3, 10_000_000);
    }

    /// <summary>Nanoseconds per call over <paramref name="calls"/> calls.</summary>
    private static double Time(Action action, int calls)
    {
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < calls; i++)
        {
            action();
        }

        return Stopwatch.GetElapsedTime(start).TotalNanoseconds / calls;
    }

    internal static double Median(double[] values)
    {
        double[] sorted = values.Order().ToArray();
        return (sorted[(sorted.Length - 1) / 2] + sorted[sorted.Length / 2]) / 2;
    }
}
