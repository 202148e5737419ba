using System;
using FluentAssertions;

namespace BatchNorm.Tests.Reference;

/// <summary>
/// Magnitude-scaled comparisons. The layer computes y = x * a + b in the element type, so an output's rounding error
/// is a few ulps of |x * a| + |b| (the terms before they cancel), not of |y|: that is the bound used here.
/// </summary>
public static class Tolerance
{
    public static double Epsilon<T>() => typeof(T) == typeof(float) ? Math.Pow(2, -23) : Math.Pow(2, -52);

    /// <summary>Asserts |actual - expected| &lt;= ulps * eps * scale[i] + absolute for every element.</summary>
    public static void ShouldBeClose(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, ReadOnlySpan<double> scale, double relative, double absolute, string what)
    {
        actual.Length.Should().Be(expected.Length, what);
        for (int i = 0; i < expected.Length; i++)
        {
            double bound = (relative * scale[i]) + absolute;
            double error = Math.Abs(actual[i] - expected[i]);
            if (!(error <= bound))
            {
                error.Should().BeLessThanOrEqualTo(bound, $"{what}[{i}]: actual {actual[i]:R}, expected {expected[i]:R}");
            }
        }
    }

    /// <summary>Asserts element-wise closeness relative to each expected value's own magnitude.</summary>
    public static void ShouldBeRelativelyClose(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, double relative, double absolute, string what)
    {
        var scale = new double[expected.Length];
        for (int i = 0; i < scale.Length; i++)
        {
            scale[i] = Math.Abs(expected[i]);
        }

        ShouldBeClose(actual, expected, scale, relative, absolute, what);
    }

    /// <summary>
    /// The conditioning scale of each output: |x * a[c]| + |b[c]| + |y| (rounding of the affine map), plus
    /// |a[c]| * std[c] when the statistics were estimated (an error of k ulps of std in the mean moves y by k ulps of
    /// |a| * std; a relative error in the variance moves it by a fraction of |y - beta|, already covered).
    /// </summary>
    public static double[] OutputScale(double[] x, int[] shape, int axis, double[] scale, double[] shift, double[] y, double[]? variance = null)
    {
        axis = ReferenceBatchNorm.NormalizeAxis(axis, shape.Length);
        var result = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int c = ReferenceBatchNorm.ChannelOf(i, shape, axis);
            result[i] = Math.Abs(x[i] * scale[c]) + Math.Abs(shift[c]) + Math.Abs(y[i])
                + (variance is null ? 0 : Math.Abs(scale[c]) * Math.Sqrt(variance[c]));
        }

        return result;
    }

    public static double[] ToDouble<T>(ReadOnlySpan<T> values)
        where T : unmanaged, System.Numerics.INumberBase<T>
    {
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            result[i] = double.CreateTruncating(values[i]);
        }

        return result;
    }

    public static T[] FromDouble<T>(double[] values)
        where T : unmanaged, System.Numerics.INumberBase<T>
    {
        var result = new T[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            result[i] = T.CreateTruncating(values[i]);
        }

        return result;
    }
}
