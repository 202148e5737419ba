using System;
using System.Collections.Generic;
using System.Numerics;
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
    public virtual void Setup()
    {
        Layer = new BatchNormalization<T>(axis: Shape.Axis) { MaxDegreeOfParallelism = Threads };
        X = new NdArray<T>(Shape.Data<T>(), Shape.Shape);
        Y = new NdArray<T>(Shape.Shape);
        Layer.Call(X, Y, training: true); // build, and give the moving statistics real values
    }

    /// <summary>The floor: copying the same bytes, input to output.</summary>
    [Benchmark(Baseline = true)]
    public void Memcpy() => X.ReadOnlySpan.CopyTo(Y.Span);
}
