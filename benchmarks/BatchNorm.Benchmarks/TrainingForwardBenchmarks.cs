using BenchmarkDotNet.Attributes;

namespace BatchNorm.Benchmarks;

/// <summary>Training-mode forward pass: batch statistics, moving-statistics update, normalization.</summary>
[GenericTypeArguments(typeof(float))]
[GenericTypeArguments(typeof(double))]
public class TrainingForwardBenchmarks<T> : LayerBenchmark<T>
    where T : unmanaged, System.Numerics.IBinaryFloatingPointIeee754<T>
{
    [Benchmark]
    public void TrainingForward() => Layer.Call(X, Y, training: true);

    protected override void Operation() => TrainingForward();
}
