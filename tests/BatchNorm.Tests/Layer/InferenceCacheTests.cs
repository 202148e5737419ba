using System;
using System.Linq;
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

    /// <summary>
    /// The same for channel counts from one 256-bit vector of bytes to past four 512-bit ones, the sizes at which a
    /// vectorized comparison of the weights changes its steps: a change in the first, a middle or the last channel of any
    /// of the four arrays is seen, and a beta of -0 is not kept in place of a later 1.
    /// </summary>
    [Theory]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(33)]
    [InlineData(64)]
    [InlineData(65)]
    public void Inference_sees_a_change_in_any_channel_of_any_weight(int channels)
    {
        Changes<float>(channels, 1e-6);
        Changes<double>(channels, 1e-12);
    }

    private static void Changes<T>(int channels, double tolerance)
        where T : unmanaged, System.Numerics.IBinaryFloatingPointIeee754<T>
    {
        var layer = new BatchNormalization<T>();
        int rows = 3;
        var x = new NdArray<T>(new NdShape(rows, channels));
        for (int i = 0; i < x.Length; i++)
        {
            x.Span[i] = T.CreateTruncating(((i * 7) % 11) - 5.0);
        }

        layer.Build(x.Shape);
        NdArray<T>[] weights = [layer.Gamma!, layer.Beta!, layer.MovingMean, layer.MovingVariance];
        double[][] values = [.. weights.Select(w => w.ToArray().Select(v => double.CreateTruncating(v)).ToArray())];
        int step = 0;
        foreach (int array in new[] { 0, 1, 2, 3 })
        {
            foreach (int c in new[] { 0, channels / 2, channels - 1 })
            {
                double value = array == 3 ? 2.0 + step : 0.25 * (step + 1);
                weights[array].Span[c] = T.CreateTruncating(value);
                values[array][c] = value;
                step++;
                Check(layer, x, values, tolerance, $"{typeof(T).Name} C={channels}, array {array}, channel {c}");
            }
        }

        // -0 and +0 give the same outputs; the check is bitwise, so -0 makes a new fold, and 1 after it another.
        weights[1].Span[channels - 1] = T.NegativeZero;
        values[1][channels - 1] = 0.0;
        Check(layer, x, values, tolerance, $"{typeof(T).Name} C={channels}, beta -0");
        weights[1].Span[channels - 1] = T.One;
        values[1][channels - 1] = 1.0;
        Check(layer, x, values, tolerance, $"{typeof(T).Name} C={channels}, beta 1 after -0");
    }

    private static void Check<T>(BatchNormalization<T> layer, NdArray<T> x, double[][] values, double tolerance, string what)
        where T : unmanaged, System.Numerics.IBinaryFloatingPointIeee754<T>
    {
        int channels = values[0].Length;
        T[] y = layer.Call(x).ToArray();
        for (int i = 0; i < y.Length; i++)
        {
            int c = i % channels;
            double expected = (values[0][c] * (double.CreateTruncating(x.Span[i]) - values[2][c]) / Math.Sqrt(values[3][c] + 1e-3)) + values[1][c];
            double.CreateTruncating(y[i]).Should().BeApproximately(expected, tolerance * (1 + Math.Abs(expected)), $"{what}, element {i}");
        }
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
