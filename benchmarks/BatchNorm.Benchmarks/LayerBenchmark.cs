using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Numerics;
using System.Threading;
using BatchNorm.Tensors;
using BenchmarkDotNet.Attributes;

namespace BatchNorm.Benchmarks;

/// <summary>
/// Shared shape parameter, data and memcpy baseline: a layer of element type <typeparamref name="T"/>, its input and an
/// output buffer. <see cref="Threads"/> is the layer's MaxDegreeOfParallelism (1, or -1 for every core); the baseline
/// is always a single-threaded copy of the same bytes.
/// </summary>
public abstract class LayerBenchmark<T>
    where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    protected BatchNormalization<T> Layer { get; private set; } = null!;

    protected NdArray<T> X { get; private set; } = null!;

    protected NdArray<T> Y { get; private set; } = null!;

    [ParamsSource(nameof(Shapes))]
    public ShapeCase Shape { get; set; } = null!;

    [Params(1, -1)]
    public int Threads { get; set; }

    public static IEnumerable<ShapeCase> Shapes => ShapeCase.All;

    [GlobalSetup]
    public void Setup()
    {
        Layer = new BatchNormalization<T>(axis: Shape.Axis) { MaxDegreeOfParallelism = Threads };
        X = new NdArray<T>(Shape.Data<T>(), Shape.Shape);
        Y = new NdArray<T>(Shape.Shape);
        Layer.Call(X, Y, training: true); // build, and give the moving statistics real values
        Prepare();
        WarmUp();
    }

    /// <summary>The floor: copying the same bytes, input to output.</summary>
    [Benchmark(Baseline = true)]
    public void Memcpy() => X.ReadOnlySpan.CopyTo(Y.Span);

    /// <summary>The class's own buffers, made after the layer is built and before the warm-up.</summary>
    protected virtual void Prepare()
    {
    }

    /// <summary>One call of what the class measures (its benchmark method's body).</summary>
    protected abstract void Operation();

    /// <summary>
    /// Runs <see cref="Operation"/> and <see cref="Memcpy"/> at least <see cref="WarmUpCalls"/> times each and for at
    /// least <see cref="WarmUpMilliseconds"/>, then pauses, so that the timed stages start on the optimized code.
    /// </summary>
    /// <remarks>
    /// The runtime first runs a method as unoptimized tier-0 code (hot loops switch to optimized code on the stack),
    /// counts its calls once no new method has been compiled for 100 ms, and recompiles it optimized in the background
    /// after 30 calls (dynamic PGO can put a round of instrumented code first). Until then the large shapes run about
    /// twice as slow: the float64 [32,56,56,64] training forward took 21 ms a call for its first ten calls and 8.5 ms
    /// from about the twenty-fifth. BenchmarkDotNet's pilot stage picks the calls per iteration from its first timed
    /// calls, so a slow call there (one took 543 ms) left a row with two calls an iteration, too few ever to reach the
    /// optimized code: it measured 43-51 ms a call against 18 ms in a re-run (thirty-seventh and thirty-eighth sessions,
    /// benchmarks/HISTORY.md).
    /// </remarks>
    private void WarmUp()
    {
        var clock = Stopwatch.StartNew();
        for (int calls = 0; calls < WarmUpCalls || clock.ElapsedMilliseconds < WarmUpMilliseconds; calls++)
        {
            Operation();
            Memcpy();
        }

        Thread.Sleep(WarmUpPauseMilliseconds); // the last background compiles
    }

    /// <summary>Fewest warm-up calls: past both 30-call thresholds.</summary>
    private const int WarmUpCalls = 100;

    /// <summary>Shortest warm-up: the small shapes' 100 calls take microseconds, within the runtime's quiet period.</summary>
    private const int WarmUpMilliseconds = 500;

    /// <summary>The pause after the warm-up.</summary>
    private const int WarmUpPauseMilliseconds = 200;
}
