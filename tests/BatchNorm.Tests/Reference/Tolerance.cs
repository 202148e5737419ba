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

    /// <summary>Asserts |actual - expected| &lt;= relative * scale[i] + absolute for every element.</summary>
    public static void ShouldBeClose(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, ReadOnlySpan<double> scale, double relative, double absolute, string what)
    {
        var bounds = new double[expected.Length];
        for (int i = 0; i < bounds.Length; i++)
        {
            bounds[i] = (relative * scale[i]) + absolute;
        }

        ShouldBeWithin(actual, expected, bounds, what);
    }

    /// <summary>Asserts |actual - expected| &lt;= bound[i] for every element.</summary>
    public static void ShouldBeWithin(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, ReadOnlySpan<double> bounds, string what)
    {
        actual.Length.Should().Be(expected.Length, what);
        for (int i = 0; i < expected.Length; i++)
        {
            double bound = bounds[i];
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
    /// The error bound of each output of y = (x - mean) * a + b when the statistics are estimated with relative
    /// accuracy <paramref name="k"/>: k * 2 (|(x - mean) * a| + |y|) bounds the rounding of the map
    /// (|b| &lt;= |y| + |(x - mean) * a|); k * |a| * std bounds how an error of k ulps of std in the mean moves y (a relative
    /// error in the variance moves y by a fraction of |y - beta|, already covered); and 4 eps_double |a| |mean| is the
    /// floor set by holding the mean in double at all.
    /// </summary>
    public static double[] OutputBound(double[] x, int[] shape, int axis, double[] mean, double[] variance, double[] scale, double[] y, double k)
    {
        axis = ReferenceBatchNorm.NormalizeAxis(axis, shape.Length);
        var result = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int c = ReferenceBatchNorm.ChannelOf(i, shape, axis);
            double a = Math.Abs(scale[c]);
            result[i] = (k * ((2 * (Math.Abs((x[i] - mean[c]) * scale[c]) + Math.Abs(y[i]))) + (a * Math.Sqrt(variance[c]))))
                + (4 * Math.Pow(2, -52) * a * Math.Abs(mean[c]));
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
