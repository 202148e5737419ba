using BenchmarkDotNet.Attributes;

namespace BatchNorm.Benchmarks;

/// <summary>Training-mode forward pass, float32, one thread: batch statistics, moving-statistics update, normalization.</summary>
public class TrainingForwardBenchmarks : LayerBenchmark
{
    [Benchmark]
    public void TrainingForward() => Layer.Call(X, Y, training: true);
}
