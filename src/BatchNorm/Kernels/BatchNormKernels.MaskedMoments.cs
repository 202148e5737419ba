using System;
using System.Buffers;
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace BatchNorm.Kernels;

internal static partial class BatchNormKernels
{
    /// <summary>
    /// Per-channel mean and M2 (sum of squared deviations) over the unmasked positions only, with the same blocked,
    /// shifted two-pass algorithm as <see cref="Moments{T}"/>. <paramref name="weights"/> holds one 0/1 value per
    /// position of the input without its channel axis (<c>[Outer, Inner]</c>); the mask is shared by all channels, so
    /// the returned count of unmasked positions per channel is one number. Channels with no unmasked position get
    /// mean = M2 = 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double MaskedMoments<T>(
        ReadOnlySpan<T> x, ChannelLayout layout, ReadOnlySpan<T> weights, Span<double> mean, Span<double> m2, VectorWidth width)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        Debug.Assert(x.Length == layout.Length && weights.Length == layout.Outer * layout.Inner);
        mean.Clear();
        m2.Clear();
        ref T src = ref MemoryMarshal.GetReference(x);
        if (layout.IsChannelsLast)
        {
            int[] rows = ArrayPool<int>.Shared.Rent(layout.Outer);
            bool wide = IsWide<T>(layout.Channels, width);
            int length = MomentArraysLength<T>(layout.Channels, wide);
            T[] scratch = ArrayPool<T>.Shared.Rent(length);
            try
            {
                int included = 0;
                for (int r = 0; r < layout.Outer; r++)
                {
                    if (weights[r] != T.Zero)
                    {
                        rows[included++] = r;
                    }
                }

                ReadOnlySpan<int> selected = rows.AsSpan(0, included);
                // The sums clear of x's page offset, as in the unmasked statistics (MomentsChannelsLast). Zen 4, float32
                // [256,1024] in cache, every row kept, the pool's array 64, 128 and 192 bytes above x's offset: 32, 22 and
                // 20 us there, 19 us slid clear (one process each, alternating, fastest of 15 rounds). Wide rows' shift
                // and sums go a quarter page apart there too (PlaceMomentArrays).
                int start = PlaceMomentArrays(scratch.AsSpan(0, length), 0, layout.Channels, wide, CacheLine.PageOffset(in src), out int sum1At, out int sum2At);
                Span<T> accumulators = scratch.AsSpan(start..length);
                switch (width)
                {
                    case VectorWidth.Vector512:
                        MomentsChannelsLast<Vector512<T>, Vector512Ops<T>, T, SelectedRows>(ref src, new SelectedRows(selected), layout.Channels, mean, m2, accumulators, prefetch: false, sum1At: sum1At, sum2At: sum2At);
                        break;
                    case VectorWidth.Vector256:
                        MomentsChannelsLast<Vector256<T>, Vector256Ops<T>, T, SelectedRows>(ref src, new SelectedRows(selected), layout.Channels, mean, m2, accumulators, prefetch: false, sum1At: sum1At, sum2At: sum2At);
                        break;
                    case VectorWidth.Vector128:
                        MomentsChannelsLast<Vector128<T>, Vector128Ops<T>, T, SelectedRows>(ref src, new SelectedRows(selected), layout.Channels, mean, m2, accumulators, prefetch: false, sum1At: sum1At, sum2At: sum2At);
                        break;
                    default:
                        MomentsChannelsLast<T, ScalarOps<T>, T, SelectedRows>(ref src, new SelectedRows(selected), layout.Channels, mean, m2, accumulators, prefetch: false, sum1At: sum1At, sum2At: sum2At);
                        break;
                }

                return included;
            }
            finally
            {
                ArrayPool<int>.Shared.Return(rows);
                ArrayPool<T>.Shared.Return(scratch);
            }
        }

        ref T w = ref MemoryMarshal.GetReference(weights);
        return width switch
        {
            VectorWidth.Vector512 => MaskedMomentsChannelsFirst<Vector512<T>, Vector512Ops<T>, T>(ref src, layout, ref w, mean, m2),
            VectorWidth.Vector256 => MaskedMomentsChannelsFirst<Vector256<T>, Vector256Ops<T>, T>(ref src, layout, ref w, mean, m2),
            VectorWidth.Vector128 => MaskedMomentsChannelsFirst<Vector128<T>, Vector128Ops<T>, T>(ref src, layout, ref w, mean, m2),
            _ => MaskedMomentsChannelsFirst<T, ScalarOps<T>, T>(ref src, layout, ref w, mean, m2),
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double MaskedMomentsChannelsFirst<TVec, TOps, T>(ref T x, ChannelLayout layout, ref T weights, Span<double> mean, Span<double> m2)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int inner = layout.Inner;
        double counted = 0;
        for (int o = 0; o < layout.Outer; o++)
        {
            ref T wo = ref Unsafe.Add(ref weights, (nint)o * inner);
            for (int j0 = 0; j0 < inner; j0 += BlockElements)
            {
                int count = Math.Min(BlockElements, inner - j0);
                ref T wb = ref Unsafe.Add(ref wo, j0);
                double blockWeight = Sum<TVec, TOps, T>(ref wb, count);
                if (blockWeight == 0)
                {
                    continue;
                }

                var merge = new BlockWeights(counted, blockWeight);
                for (int c = 0; c < layout.Channels; c++)
                {
                    ref T xb = ref Unsafe.Add(ref x, (((nint)o * layout.Channels + c) * inner) + j0);
                    T k = T.CreateTruncating(WeightedSum<TVec, TOps, T>(ref xb, ref wb, count, T.Zero, square: false) / blockWeight);
                    double s1 = WeightedSum<TVec, TOps, T>(ref xb, ref wb, count, k, square: false);
                    double s2 = WeightedSum<TVec, TOps, T>(ref xb, ref wb, count, k, square: true);
                    MergeBlock(ref mean[c], ref m2[c], merge, double.CreateTruncating(k), s1, s2);
                }

                counted += blockWeight;
            }
        }

        return counted;
    }

    /// <summary><c>sum(w * (x - shift))</c>, or <c>sum(w * (x - shift)^2)</c> when <paramref name="square"/>, for 0/1 weights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double WeightedSum<TVec, TOps, T>(ref T x, ref T w, int count, T shift, bool square)
        where TVec : struct
        where TOps : IVectorOps<TVec, T>
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int width = TOps.Count;
        TVec k = TOps.Broadcast(shift);
        TVec acc = TOps.Zero;
        int i = 0;
        for (; i <= count - width; i += width)
        {
            TVec d = TOps.Multiply(TOps.Subtract(TOps.Load(ref x, (nuint)i), k), TOps.Load(ref w, (nuint)i));
            acc = TOps.Add(acc, square ? TOps.Multiply(d, d) : d);
        }

        double sum = TOps.SumToDouble(acc);
        double kd = double.CreateTruncating(shift);
        for (; i < count; i++)
        {
            double d = (double.CreateTruncating(Unsafe.Add(ref x, i)) - kd) * double.CreateTruncating(Unsafe.Add(ref w, i));
            sum += square ? d * d : d;
        }

        return sum;
    }
}
