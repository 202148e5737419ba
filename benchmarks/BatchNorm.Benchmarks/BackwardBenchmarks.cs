using System;
using BenchmarkDotNet.Attributes;

namespace BatchNorm.Benchmarks;

/// <summary>
/// Backward pass after a training-mode call, float32, one thread: dx, dgamma and dbeta into caller buffers
/// (reads x and dy, writes dx). The baseline copies the input's bytes once.
/// </summary>
public class BackwardBenchmarks : LayerBenchmark
{
    private float[] _dy = [];
    private float[] _dx = [];
    private float[] _dgamma = [];
    private float[] _dbeta = [];

    public override void Setup()
    {
        base.Setup();
        var random = new Random(7);
        _dy = new float[X.Length];
        for (int i = 0; i < _dy.Length; i++)
        {
            _dy[i] = (float)(random.NextDouble() - 0.5);
        }

        _dx = new float[X.Length];
        _dgamma = new float[Layer.Channels];
        _dbeta = new float[Layer.Channels];
    }

    [Benchmark]
    public void Backward() => Layer.Backward(_dy, _dx, _dgamma, _dbeta);
}
