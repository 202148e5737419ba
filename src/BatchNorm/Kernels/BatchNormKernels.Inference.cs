using System;
using System.Numerics;

namespace BatchNorm.Kernels;

internal static partial class BatchNormKernels
{
    /// <summary>
    /// Inference mode: <c>y = gamma * (x - movingMean) / sqrt(movingVariance + epsilon) + beta</c>, folded once per call
    /// into <c>y = (x - center) * scale + shift</c>. Reads no state but its arguments, so concurrent calls are safe.
    /// </summary>
    public static void Inference<T>(
        ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout,
        ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, ReadOnlySpan<T> movingMean, ReadOnlySpan<T> movingVariance,
        double epsilon, VectorWidth width, int maxDegree = 1)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        Normalize<T, T, T>(x, y, layout, movingMean, movingVariance, gamma, beta, epsilon, width, maxDegree);
}
