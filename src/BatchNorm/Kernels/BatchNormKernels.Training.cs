using System;
using System.Numerics;

namespace BatchNorm.Kernels;

internal static partial class BatchNormKernels
{
    /// <summary>
    /// Training-mode forward pass: batch statistics (<see cref="Moments{T}"/>), the moving-statistics update
    /// <c>moving = moving * momentum + batch * (1 - momentum)</c> (biased batch variance, as Keras), and
    /// <c>y = gamma * (x - mean) / sqrt(variance + epsilon) + beta</c> folded into <c>y = (x - center) * scale + shift</c>.
    /// The batch statistics are left in <paramref name="batchMean"/> and <paramref name="batchVariance"/>.
    /// <paramref name="y"/> may be <paramref name="x"/> itself: the statistics are complete before any output is written.
    /// </summary>
    public static void TrainingForward<T>(
        ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout,
        ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, Span<T> movingMean, Span<T> movingVariance,
        double momentum, double epsilon, Span<double> batchMean, Span<double> batchVariance, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Moments(x, layout, batchMean, batchVariance, width);
        UpdateMovingStatistic(movingMean, batchMean, momentum);
        UpdateMovingStatistic(movingVariance, batchVariance, momentum);

        Normalize<double, T>(x, y, layout, batchMean, batchVariance, gamma, beta, epsilon, width);
    }

    /// <summary><c>moving = moving * momentum + batch * (1 - momentum)</c>, in double precision, rounded once.</summary>
    public static void UpdateMovingStatistic<T>(Span<T> moving, ReadOnlySpan<double> batch, double momentum)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        double keep = momentum;
        double take = 1.0 - momentum;
        for (int c = 0; c < moving.Length; c++)
        {
            moving[c] = T.CreateTruncating((double.CreateTruncating(moving[c]) * keep) + (batch[c] * take));
        }
    }
}
