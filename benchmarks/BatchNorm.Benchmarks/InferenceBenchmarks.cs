using BenchmarkDotNet.Attributes;

namespace BatchNorm.Benchmarks;

/// <summary>Inference mode, float32, one thread: reads the input once and writes the output once, like a memcpy.</summary>
public class InferenceBenchmarks : LayerBenchmark
{
    [Benchmark]
    public void Inference() => Layer.Call(X, Y, training: false);
}
