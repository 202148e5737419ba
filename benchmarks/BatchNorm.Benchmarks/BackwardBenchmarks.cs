using System;
using BenchmarkDotNet.Attributes;

namespace BatchNorm.Benchmarks;

/// <summary>
/// Backward pass after a training-mode call: dx, dgamma and dbeta into caller buffers (reads x and dy, writes dx).
/// The baseline copies the input's bytes once.
/// </summary>
[GenericTypeArguments(typeof(float))]
[GenericTypeArguments(typeof(double))]
public class BackwardBenchmarks<T> : LayerBenchmark<T>
    where T : unmanaged, System.Numerics.IBinaryFloatingPointIeee754<T>
{
    private T[] _dy = [];
    private T[] _dx = [];
    private T[] _dgamma = [];
    private T[] _dbeta = [];

    protected override void Prepare()
    {
        _dy = Shape.OutputGradient<T>();
        _dx = new T[X.Length];
        _dgamma = new T[Layer.Channels];
        _dbeta = new T[Layer.Channels];
    }

    [Benchmark]
    public void Backward() => Layer.Backward(_dy, _dx, _dgamma, _dbeta);

    protected override void Operation() => Backward();
}
