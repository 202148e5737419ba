using System;

namespace BatchNorm.Tests.Reference;

/// <summary>
/// Keras' BatchNormalization forward pass as one plain float64 function of (x, gamma, beta), for finite differences:
/// batch statistics (optionally masked, with Keras' +1e-7 in the denominator), or fixed (moving) statistics, and the
/// renorm corrections r and d as constants (Keras wraps them in stop_gradient).
/// </summary>
public sealed record ReferenceForward(int[] Shape, int Axis, double Epsilon)
{
    public const double MaskEpsilon = 1e-7;

    /// <summary>Batch statistics when null; otherwise the fixed (moving) mean and variance.</summary>
    public (double[] Mean, double[] Variance)? Fixed { get; init; }

    /// <summary>One bool per position of the input without its channel axis, row-major; null for no mask.</summary>
    public bool[]? Mask { get; init; }

    public double[]? R { get; init; }

    public double[]? D { get; init; }

    /// <summary>The absolute finite-difference step for x; null means 1e-5 * max(1, |x|). Hard data (a large offset, a
    /// small spread) needs a step relative to the spread instead.</summary>
    public double? XStep { get; init; }

    public int Channels => Shape[ReferenceBatchNorm.NormalizeAxis(Axis, Shape.Length)];

    /// <summary>The mask index of flat input position i: its multi-index without the channel axis, row-major.</summary>
    public int MaskIndexOf(int flatIndex)
    {
        int axis = ReferenceBatchNorm.NormalizeAxis(Axis, Shape.Length);
        int remaining = flatIndex;
        int index = 0;
        int stride = 1;
        for (int d = Shape.Length - 1; d >= 0; d--)
        {
            int i = remaining % Shape[d];
            remaining /= Shape[d];
            if (d != axis)
            {
                index += i * stride;
                stride *= Shape[d];
            }
        }

        return index;
    }

    public (double[] Mean, double[] Variance) Statistics(double[] x)
    {
        if (Fixed is { } f)
        {
            return f;
        }

        if (Mask is null)
        {
            return ReferenceBatchNorm.Moments(x, Shape, Axis);
        }

        int axis = ReferenceBatchNorm.NormalizeAxis(Axis, Shape.Length);
        var sum = new double[Channels];
        var weight = new double[Channels];
        for (int i = 0; i < x.Length; i++)
        {
            if (Mask[MaskIndexOf(i)])
            {
                int c = ReferenceBatchNorm.ChannelOf(i, Shape, axis);
                sum[c] += x[i];
                weight[c] += 1;
            }
        }

        var mean = new double[Channels];
        for (int c = 0; c < Channels; c++)
        {
            mean[c] = sum[c] / (weight[c] + MaskEpsilon);
        }

        var sq = new double[Channels];
        for (int i = 0; i < x.Length; i++)
        {
            if (Mask[MaskIndexOf(i)])
            {
                int c = ReferenceBatchNorm.ChannelOf(i, Shape, axis);
                sq[c] += (x[i] - mean[c]) * (x[i] - mean[c]);
            }
        }

        var variance = new double[Channels];
        for (int c = 0; c < Channels; c++)
        {
            variance[c] = sq[c] / (weight[c] + MaskEpsilon);
        }

        return (mean, variance);
    }

    /// <summary>y = gamma' (x - mean) / sqrt(var + eps) + beta' with gamma' = r gamma, beta' = d gamma + beta.</summary>
    public double[] Apply(double[] x, double[]? gamma, double[]? beta)
    {
        var (mean, variance) = Statistics(x);
        var g = new double[Channels];
        var b = new double[Channels];
        for (int c = 0; c < Channels; c++)
        {
            double gc = gamma is null ? 1 : gamma[c];
            double r = R is null ? 1 : R[c];
            double d = D is null ? 0 : D[c];
            g[c] = r * gc;
            b[c] = (d * gc) + (beta is null ? 0 : beta[c]);
        }

        return ReferenceBatchNorm.Normalize(x, Shape, Axis, mean, variance, g, b, Epsilon);
    }

    /// <summary>L = sum(y * w).</summary>
    public double Loss(double[] x, double[]? gamma, double[]? beta, double[] w)
    {
        double[] y = Apply(x, gamma, beta);
        double loss = 0;
        for (int i = 0; i < y.Length; i++)
        {
            loss += y[i] * w[i];
        }

        return loss;
    }

    /// <summary>Central finite differences (Richardson-extrapolated) of <see cref="Loss"/> in x, gamma and beta.</summary>
    public (double[] Dx, double[]? Dgamma, double[]? Dbeta) FiniteDifferences(double[] x, double[]? gamma, double[]? beta, double[] w)
    {
        var dx = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            dx[i] = Central(x, i, v => Loss(v, gamma, beta, w), XStep);
        }

        double[]? dgamma = gamma is null ? null : new double[gamma.Length];
        double[]? dbeta = beta is null ? null : new double[beta.Length];
        for (int c = 0; c < Channels; c++)
        {
            if (dgamma is not null)
            {
                dgamma[c] = Central(gamma!, c, g => Loss(x, g, beta, w));
            }

            if (dbeta is not null)
            {
                dbeta[c] = Central(beta!, c, b => Loss(x, gamma, b, w));
            }
        }

        return (dx, dgamma, dbeta);
    }

    private static double Central(double[] values, int index, Func<double[], double> f, double? step = null)
    {
        double original = values[index];
        double h = step ?? (1e-5 * Math.Max(1.0, Math.Abs(original)));
        var copy = (double[])values.Clone();
        double Difference(double step)
        {
            copy[index] = original + step;
            double plus = f(copy);
            copy[index] = original - step;
            double minus = f(copy);
            copy[index] = original;
            return (plus - minus) / (2 * step);
        }

        // Richardson extrapolation of the central difference: error O(h^4) instead of O(h^2).
        return ((4 * Difference(h / 2)) - Difference(h)) / 3;
    }
}
