using System;
using System.Linq;
using BatchNorm.Tensors;

namespace BatchNorm.Benchmarks;

/// <summary>A benchmark shape and channel axis, with deterministic data.</summary>
public sealed class ShapeCase
{
    private ShapeCase(string name, int[] dims, int axis)
    {
        Name = name;
        Shape = new NdShape(dims);
        Axis = axis;
    }

    public string Name { get; }

    public NdShape Shape { get; }

    public int Axis { get; }

    /// <summary>The five shapes of the performance issue.</summary>
    public static ShapeCase[] All { get; } =
    [
        new("[32,56,56,64] axis -1", [32, 56, 56, 64], -1),
        new("[32,64,56,56] axis 1", [32, 64, 56, 56], 1),
        new("[256,1024] axis -1", [256, 1024], -1),
        new("[64,7,7,2048] axis -1", [64, 7, 7, 2048], -1),
        new("[8,16] axis -1", [8, 16], -1),
    ];

    /// <summary>
    /// Channels-first inputs with short runs (the feature maps of a ResNet's later stages), for the alternating harness's
    /// <c>--short-runs</c>: in cache, and from memory (over the prefetch and streaming thresholds in float32). Not in the
    /// BenchmarkDotNet suite, which keeps the performance issue's five shapes.
    /// </summary>
    public static ShapeCase[] ShortRuns { get; } =
    [
        new("[32,512,7,7] axis 1", [32, 512, 7, 7], 1),
        new("[32,256,14,14] axis 1", [32, 256, 14, 14], 1),
        new("[256,512,7,7] axis 1", [256, 512, 7, 7], 1),
        new("[128,256,14,14] axis 1", [128, 256, 14, 14], 1),
    ];

    public T[] Data<T>()
        where T : struct, System.Numerics.INumberBase<T>
    {
        var random = new Random(42);
        return Enumerable.Range(0, Shape.Length).Select(_ => T.CreateTruncating((random.NextDouble() * 4) - 1)).ToArray();
    }

    /// <summary>The output gradient fed to the backward pass: deterministic, uniform in [-0.5, 0.5).</summary>
    public T[] OutputGradient<T>()
        where T : struct, System.Numerics.INumberBase<T>
    {
        var random = new Random(7);
        return Enumerable.Range(0, Shape.Length).Select(_ => T.CreateTruncating(random.NextDouble() - 0.5)).ToArray();
    }

    public override string ToString() => Name;
}
