using System.Collections.Generic;
using BatchNorm.Tensors;
using BenchmarkDotNet.Attributes;

namespace BatchNorm.Benchmarks;

/// <summary>Inference mode, float32, one thread: reads the input once and writes the output once, like a memcpy.</summary>
public class InferenceBenchmarks
{
    private BatchNormalization _layer = null!;
    private NdArray<float> _x = null!;
    private NdArray<float> _y = null!;

    [ParamsSource(nameof(Shapes))]
    public ShapeCase Shape { get; set; } = null!;

    public static IEnumerable<ShapeCase> Shapes => ShapeCase.All;

    [GlobalSetup]
    public void Setup()
    {
        _layer = new BatchNormalization(axis: Shape.Axis);
        _x = new NdArray<float>(Shape.Data<float>(), Shape.Shape);
        _y = new NdArray<float>(Shape.Shape);
        _layer.Call(_x, _y, training: true); // build and give the moving statistics real values
    }

    /// <summary>The floor: copying the same bytes.</summary>
    [Benchmark(Baseline = true)]
    public void Memcpy() => _x.ReadOnlySpan.CopyTo(_y.Span);

    [Benchmark]
    public void Inference() => _layer.Call(_x, _y, training: false);
}
