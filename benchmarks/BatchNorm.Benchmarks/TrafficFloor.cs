using System;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BatchNorm.Kernels;

namespace BatchNorm.Benchmarks;

/// <summary>
/// The traffic floor of each mode, for the alternating harness (<c>--floors</c>): plain <see cref="Vector{T}"/> loops
/// that move the bytes the layer's passes must move, and do nothing else but one add per element read:
/// <list type="bullet">
/// <item><c>inference</c>: one pass, x read and y written (y = x);</item>
/// <item><c>training</c>: x read (the statistics need it all before anything is written), then x read and y written;</item>
/// <item><c>backward</c>: x and dy read (the sums), then x and dy read and dx written (dx = x + dy).</item>
/// </list>
/// The outputs are written as the layer writes them: with streaming stores from
/// <see cref="NonTemporal.ThresholdBytes"/> up (the library's own test), plain ones below. Below that size the second
/// pass walks from the last element to the first, so that it starts on what the first pass left in L2, as the layer's
/// in-cache passes do where that pays; from memory the order makes no difference here. So the layer's time over this
/// one is what its arithmetic, coefficients and per-channel steps cost on top of its traffic. No software prefetching:
/// a kernel can beat its floor, by a little, where the hardware prefetcher alone leaves gaps.
/// </summary>
internal static unsafe class TrafficFloor
{
    /// <summary>Every sum the read loops make ends here, so that no loop can be left out.</summary>
    private static double s_sink;

    /// <summary>The floor of <paramref name="mode"/> on the harness's buffers (the output is <paramref name="y"/>, or <paramref name="dx"/> for the backward).</summary>
    public static Action For<T>(string mode, T[] x, T[] y, T[] dy, T[] dx)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        bool stream = NonTemporal.IsWorthIt<T>(x.Length);
        return mode switch
        {
            "inference" => () => Combine(x, null, y, stream),
            "training" => () =>
            {
                Read(x, null);
                Second(x, null, y, stream);
            },
            _ => () =>
            {
                Read(x, dy);
                Second(x, dy, dx, stream);
            },
        };
    }

    /// <summary>
    /// Checks that the floor of <paramref name="mode"/>, run last, wrote every element of its output: y = x, or for the
    /// backward dx = x + dy (the same float additions, so exactly). A loop that skipped part of its bytes would time too
    /// little.
    /// </summary>
    /// <exception cref="InvalidOperationException">An element differs.</exception>
    public static void Check<T>(string mode, T[] x, T[] y, T[] dy, T[] dx)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        bool backward = mode is not ("inference" or "training");
        T[] output = backward ? dx : y;
        for (int i = 0; i < x.Length; i++)
        {
            T expected = backward ? x[i] + dy[i] : x[i];
            if (output[i] != expected)
            {
                throw new InvalidOperationException($"The {mode} traffic floor wrote {output[i]} at element {i}; expected {expected}.");
            }
        }
    }

    /// <summary>Reads <paramref name="a"/> and, when given, <paramref name="b"/> (of the same length), side by side.</summary>
    private static void Read<T>(T[] a, T[]? b)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = a.Length, w = Vector<T>.Count, i = 0;
        Vector<T> s0 = Vector<T>.Zero, s1 = Vector<T>.Zero, s2 = Vector<T>.Zero, s3 = Vector<T>.Zero;
        T tail = T.Zero;
        fixed (T* pa = a)
        fixed (T* pb = b)
        {
            if (pb is null)
            {
                for (; i <= n - (4 * w); i += 4 * w)
                {
                    s0 += Load(pa + i);
                    s1 += Load(pa + i + w);
                    s2 += Load(pa + i + (2 * w));
                    s3 += Load(pa + i + (3 * w));
                }
            }
            else
            {
                for (; i <= n - (2 * w); i += 2 * w)
                {
                    s0 += Load(pa + i);
                    s1 += Load(pb + i);
                    s2 += Load(pa + i + w);
                    s3 += Load(pb + i + w);
                }
            }

            for (; i < n; i++)
            {
                tail += Element(pa, pb, i);
            }
        }

        s_sink += double.CreateTruncating(Vector.Sum(s0 + s1 + s2 + s3) + tail);
    }

    /// <summary>The second pass of two: <see cref="Combine"/> when streaming, otherwise <see cref="CombineDownward"/>.</summary>
    private static void Second<T>(T[] a, T[]? b, T[] output, bool stream)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (stream)
        {
            Combine(a, b, output, stream);
        }
        else
        {
            CombineDownward(a, b, output);
        }
    }

    /// <summary><see cref="Combine"/> with plain stores, from the last element to the first.</summary>
    private static void CombineDownward<T>(T[] a, T[]? b, T[] output)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = a.Length, w = Vector<T>.Count, i = n;
        fixed (T* pa = a)
        fixed (T* pb = b)
        fixed (T* po = output)
        {
            for (; i >= w; i -= w)
            {
                Unsafe.WriteUnaligned(po + i - w, pb is null ? Load(pa + i - w) : Load(pa + i - w) + Load(pb + i - w));
            }

            while (i > 0)
            {
                i--;
                po[i] = Element(pa, pb, i);
            }
        }
    }

    /// <summary><c>output = a</c>, or <c>output = a + b</c> when <paramref name="b"/> is given; streaming stores when <paramref name="stream"/>.</summary>
    private static void Combine<T>(T[] a, T[]? b, T[] output, bool stream)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = a.Length, w = Vector<T>.Count, i = 0;
        int vectorBytes = w * sizeof(T);
        stream &= (vectorBytes == 64 && Avx512F.IsSupported) || (vectorBytes == 32 && Avx.IsSupported) || (vectorBytes == 16 && Sse2.IsSupported);
        fixed (T* pa = a)
        fixed (T* pb = b)
        fixed (T* po = output)
        {
            if (stream)
            {
                // Scalar up to the first aligned vector of the output: streaming stores must be aligned.
                int head = Math.Min(n, (int)((0 - (nuint)po) & (nuint)(vectorBytes - 1)) / sizeof(T));
                for (; i < head; i++)
                {
                    po[i] = Element(pa, pb, i);
                }
            }

            for (; i <= n - w; i += w)
            {
                Vector<T> v = pb is null ? Load(pa + i) : Load(pa + i) + Load(pb + i);
                if (stream)
                {
                    StoreNonTemporal(v, po + i);
                }
                else
                {
                    Unsafe.WriteUnaligned(po + i, v);
                }
            }

            for (; i < n; i++)
            {
                po[i] = Element(pa, pb, i);
            }
        }

        if (stream)
        {
            Sse.StoreFence();
        }
    }

    /// <summary>One element of the loops' result: <c>a[i]</c>, plus <c>b[i]</c> when there is a second stream.</summary>
    private static T Element<T>(T* a, T* b, int i)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> => b is null ? a[i] : a[i] + b[i];

    private static Vector<T> Load<T>(T* p)
        where T : unmanaged => Unsafe.ReadUnaligned<Vector<T>>(p);

    /// <summary>
    /// A streaming store of one <see cref="Vector{T}"/> (64 bytes with AVX-512 when <c>DOTNET_PreferredVectorBitWidth=512</c>,
    /// 32 with AVX, 16 with SSE2) to an aligned address.
    /// </summary>
    private static void StoreNonTemporal<T>(Vector<T> v, T* p)
        where T : unmanaged
    {
        if (Vector<T>.Count * sizeof(T) == 64)
        {
            Avx512F.StoreAlignedNonTemporal((byte*)p, v.AsVector512().AsByte());
        }
        else if (Vector<T>.Count * sizeof(T) == 32)
        {
            Avx.StoreAlignedNonTemporal((byte*)p, v.AsVector256().AsByte());
        }
        else
        {
            Sse2.StoreAlignedNonTemporal((byte*)p, v.AsVector128().AsByte());
        }
    }
}
