using System;

namespace BatchNorm.Tests.Reference;

/// <summary>
/// The float64 oracle: Keras' BatchNormalization written as plainly as possible, element by element, with the
/// channel of each element found by decomposing its flat index into a full multi-index (not the library's
/// [outer, C, inner] view). Statistics are exact two-pass sums in double.
/// </summary>
public static class ReferenceBatchNorm
{
    public static int ChannelOf(int flatIndex, int[] shape, int axis)
    {
        int remaining = flatIndex;
        int channel = 0;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            int index = remaining % shape[d];
            remaining /= shape[d];
            if (d == axis)
            {
                channel = index;
            }
        }

        return channel;
    }

    public static int NormalizeAxis(int axis, int rank) => axis < 0 ? axis + rank : axis;

    /// <summary>
    /// Per-channel mean and biased variance: two passes, each a compensated (Neumaier) double sum, so the oracle is
    /// accurate to a few double ulps whatever the count; the variance pass also corrects for the rounding of the mean.
    /// </summary>
    public static (double[] Mean, double[] Variance) Moments(double[] x, int[] shape, int axis)
    {
        axis = NormalizeAxis(axis, shape.Length);
        int channels = shape[axis];
        var sum = new CompensatedSum[channels];
        var count = new double[channels];
        for (int i = 0; i < x.Length; i++)
        {
            int c = ChannelOf(i, shape, axis);
            sum[c].Add(x[i]);
            count[c] += 1;
        }

        var mean = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            mean[c] = sum[c].Value / count[c];
        }

        var deviation = new CompensatedSum[channels];
        var square = new CompensatedSum[channels];
        for (int i = 0; i < x.Length; i++)
        {
            int c = ChannelOf(i, shape, axis);
            double d = x[i] - mean[c];
            deviation[c].Add(d);
            square[c].Add(d * d);
        }

        var variance = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            double meanDeviation = deviation[c].Value / count[c];
            mean[c] += meanDeviation;
            variance[c] = Math.Max(0, (square[c].Value / count[c]) - (meanDeviation * meanDeviation));
        }

        return (mean, variance);
    }

    /// <summary>Neumaier's compensated summation.</summary>
    private struct CompensatedSum
    {
        private double _sum;
        private double _compensation;

        public readonly double Value => _sum + _compensation;

        public void Add(double value)
        {
            double t = _sum + value;
            _compensation += Math.Abs(_sum) >= Math.Abs(value) ? (_sum - t) + value : (value - t) + _sum;
            _sum = t;
        }
    }

    /// <summary>y = gamma * (x - mean) / sqrt(variance + eps) + beta; null gamma means 1, null beta means 0.</summary>
    public static double[] Normalize(double[] x, int[] shape, int axis, double[] mean, double[] variance, double[]? gamma, double[]? beta, double epsilon)
    {
        axis = NormalizeAxis(axis, shape.Length);
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int c = ChannelOf(i, shape, axis);
            double g = gamma is null ? 1.0 : gamma[c];
            double b = beta is null ? 0.0 : beta[c];
            y[i] = (g * (x[i] - mean[c]) / Math.Sqrt(variance[c] + epsilon)) + b;
        }

        return y;
    }

    /// <summary>The affine coefficients the layer folds to, computed from the same formula in double.</summary>
    public static (double[] Scale, double[] Shift) Fold(double[] mean, double[] variance, double[]? gamma, double[]? beta, double epsilon)
    {
        var scale = new double[mean.Length];
        var shift = new double[mean.Length];
        for (int c = 0; c < mean.Length; c++)
        {
            scale[c] = (gamma is null ? 1.0 : gamma[c]) / Math.Sqrt(variance[c] + epsilon);
            shift[c] = (beta is null ? 0.0 : beta[c]) - (mean[c] * scale[c]);
        }

        return (scale, shift);
    }

    /// <summary>moving = moving * momentum + batch * (1 - momentum).</summary>
    public static double[] UpdateMoving(double[] moving, double[] batch, double momentum)
    {
        var result = new double[moving.Length];
        for (int c = 0; c < moving.Length; c++)
        {
            result[c] = (moving[c] * momentum) + (batch[c] * (1 - momentum));
        }

        return result;
    }
}

/// <summary>A whole Keras layer in float64, with the same state and call rule as the library's.</summary>
public sealed class ReferenceLayer
{
    public ReferenceLayer(int axis, double momentum, double epsilon, double[]? gamma, double[]? beta, double[] movingMean, double[] movingVariance, bool trainable = true)
    {
        Axis = axis;
        Momentum = momentum;
        Epsilon = epsilon;
        Gamma = gamma;
        Beta = beta;
        MovingMean = movingMean;
        MovingVariance = movingVariance;
        Trainable = trainable;
    }

    public int Axis { get; }

    public double Momentum { get; }

    public double Epsilon { get; }

    public double[]? Gamma { get; }

    public double[]? Beta { get; }

    public double[] MovingMean { get; private set; }

    public double[] MovingVariance { get; private set; }

    public bool Trainable { get; }

    /// <summary>The output, and the statistics it normalized with (batch or moving).</summary>
    public (double[] Output, double[] Mean, double[] Variance) Call(double[] x, int[] shape, bool training)
    {
        if (training && Trainable)
        {
            var (mean, variance) = ReferenceBatchNorm.Moments(x, shape, Axis);
            MovingMean = ReferenceBatchNorm.UpdateMoving(MovingMean, mean, Momentum);
            MovingVariance = ReferenceBatchNorm.UpdateMoving(MovingVariance, variance, Momentum);
            return (ReferenceBatchNorm.Normalize(x, shape, Axis, mean, variance, Gamma, Beta, Epsilon), mean, variance);
        }

        return (ReferenceBatchNorm.Normalize(x, shape, Axis, MovingMean, MovingVariance, Gamma, Beta, Epsilon), MovingMean, MovingVariance);
    }
}
