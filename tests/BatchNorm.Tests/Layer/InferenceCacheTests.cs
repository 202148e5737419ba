using System;
using BatchNorm.Tensors;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Layer;

/// <summary>Inference reuses its folded coefficients only while the live weights are unchanged.</summary>
public class InferenceCacheTests
{
    [Fact]
    public void Inference_sees_every_weight_written_in_place_between_calls()
    {
        var layer = new BatchNormalization<double>();
        var x = new NdArray<double>([1.0, 2.0, 3.0, 4.0], new NdShape(2, 2));
        layer.Build(x.Shape);
        Close(layer.Call(x).ToArray(), Expected(x, [1, 1], [0, 0], [0, 0], [1, 1]));

        layer.Gamma!.Span[1] = 3;
        Close(layer.Call(x).ToArray(), Expected(x, [1, 3], [0, 0], [0, 0], [1, 1]));
        layer.Beta!.Span[0] = -2;
        Close(layer.Call(x).ToArray(), Expected(x, [1, 3], [-2, 0], [0, 0], [1, 1]));
        layer.MovingMean.Span[1] = 0.5;
        Close(layer.Call(x).ToArray(), Expected(x, [1, 3], [-2, 0], [0, 0.5], [1, 1]));
        layer.MovingVariance.Span[0] = 4;
        Close(layer.Call(x).ToArray(), Expected(x, [1, 3], [-2, 0], [0, 0.5], [4, 1]));
        layer.SetWeights([1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]);
        Close(layer.Call(x).ToArray(), Expected(x, [1, 1], [0, 0], [0, 0], [1, 1]));
    }

    [Fact]
    public void Inference_after_training_uses_the_updated_moving_statistics()
    {
        var layer = new BatchNormalization<double>(momentum: 0.0);
        var x = new NdArray<double>([1.0, 10.0, 3.0, 30.0], new NdShape(2, 2));
        Close(layer.Call(x).ToArray(), Expected(x, [1, 1], [0, 0], [0, 0], [1, 1]));
        double[] training = layer.Call(x, training: true).ToArray();
        double[] inference = layer.Call(x).ToArray();
        for (int i = 0; i < 4; i++)
        {
            inference[i].Should().BeApproximately(training[i], 1e-12, "momentum 0 makes the moving statistics the batch's");
        }
    }

    private static void Close(double[] actual, double[] expected)
    {
        actual.Should().HaveCount(expected.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            actual[i].Should().BeApproximately(expected[i], 1e-12 * (1 + Math.Abs(expected[i])), $"element {i}");
        }
    }

    /// <summary>The plain formula y = gamma (x - mean) / sqrt(var + 1e-3) + beta.</summary>
    private static double[] Expected(NdArray<double> x, double[] gamma, double[] beta, double[] mean, double[] variance)
    {
        var y = new double[x.Length];
        for (int i = 0; i < y.Length; i++)
        {
            int c = i % 2;
            y[i] = (gamma[c] * (x.ReadOnlySpan[i] - mean[c]) / Math.Sqrt(variance[c] + 1e-3)) + beta[c];
        }

        return y;
    }
}
