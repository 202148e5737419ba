using System.Collections.Generic;
using BatchNorm.Tensors;
using BenchmarkDotNet.Attributes;

namespace BatchNorm.Benchmarks;

/// <summary>Shared shape parameter, data and memcpy baseline: a float32 layer, its input and an output buffer.</summary>
public abstract class LayerBenchmark
{
    protected BatchNormalization Layer { get; private set; } = null!;

    protected NdArray<float> X { get; private set; } = null!;

    protected NdArray<float> Y { get; private set; } = null!;

    [ParamsSource(nameof(Shapes))]
    public ShapeCase Shape { get; set; } = null!;

    public static IEnumerable<ShapeCase> Shapes => ShapeCase.All;

    [GlobalSetup]
    public virtual void Setup()
    {
        Layer = new BatchNormalization(axis: Shape.Axis);
        X = new NdArray<float>(Shape.Data<float>(), Shape.Shape);
        Y = new NdArray<float>(Shape.Shape);
        Layer.Call(X, Y, training: true); // build, and give the moving statistics real values
    }

    /// <summary>The floor: copying the same bytes, input to output.</summary>
    [Benchmark(Baseline = true)]
    public void Memcpy() => X.ReadOnlySpan.CopyTo(Y.Span);
}
