using BenchmarkDotNet.Attributes;

namespace BatchNorm.Benchmarks;

/// <summary>Inference mode: reads the input once and writes the output once, like a memcpy.</summary>
[GenericTypeArguments(typeof(float))]
[GenericTypeArguments(typeof(double))]
public class InferenceBenchmarks<T> : LayerBenchmark<T>
    where T : unmanaged, System.Numerics.IBinaryFloatingPointIeee754<T>
{
    [Benchmark]
    public void Inference() => Layer.Call(X, Y, training: false);

    protected override void Operation() => Inference();
}
