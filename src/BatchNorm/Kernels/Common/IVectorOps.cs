using System;
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BatchNorm.Kernels;

/// <summary>
/// The few vector operations the kernels need, as static abstract members, so that each kernel is written once as
/// a generic method and the JIT specialises and inlines it for <see cref="Vector512{T}"/>, <see cref="Vector256{T}"/>,
/// <see cref="Vector128{T}"/> and plain scalars (<see cref="ScalarOps{T}"/>, a "vector" of one element).
/// Multiply and add are never fused, so every width rounds each element identically.
/// </summary>
internal interface IVectorOps<TVec, T>
    where TVec : struct
    where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    static abstract int Count { get; }

    static abstract TVec Zero { get; }

    static abstract TVec Broadcast(T value);

    static abstract TVec Load(ref T source, nuint elementOffset);

    static abstract void Store(TVec value, ref T destination, nuint elementOffset);

    /// <summary>Whether <see cref="StoreStreaming"/> is a non-temporal store on this machine (x86 only).</summary>
    static abstract bool CanStream { get; }

    /// <summary>
    /// A non-temporal store (<c>movntps</c>/<c>movntpd</c>): the line goes to memory without being read first
    /// and without displacing the caches. The destination must be aligned to the vector's size and pinned, and the
    /// caller ends the pass with <see cref="NonTemporal.Fence"/>. Where <see cref="CanStream"/> is false, a plain store.
    /// </summary>
    static abstract void StoreStreaming(TVec value, ref T destination, nuint elementOffset);

    static abstract TVec Add(TVec left, TVec right);

    static abstract TVec Subtract(TVec left, TVec right);

    static abstract TVec Multiply(TVec left, TVec right);

    /// <summary>Sums the lanes in double precision, so that large partial sums of float lanes cannot overflow.</summary>
    static abstract double SumToDouble(TVec value);

    static abstract TVec Divide(TVec left, TVec right);

    /// <summary>The sign flipped (<c>-x</c>, not <c>0 - x</c>: -0 for +0).</summary>
    static abstract TVec Negate(TVec value);

    static abstract TVec SquareRoot(TVec value);

    /// <summary>The IEEE 754 maximum of each pair, as <see cref="Math.Max(double, double)"/>: NaN if either is NaN, +0 above -0.</summary>
    static abstract TVec Max(TVec left, TVec right);

    static abstract bool LessThanOrEqualAll(TVec left, TVec right);

    /// <summary>A mask of the lanes below <paramref name="count"/>, for <see cref="Select"/> (one lane: set when count &gt; 0).</summary>
    static abstract TVec LanesBelow(int count);

    /// <summary>Each lane from <paramref name="left"/> where <paramref name="mask"/> (from <see cref="LanesBelow"/>) is set, else from <paramref name="right"/>; the values are not touched.</summary>
    static abstract TVec Select(TVec mask, TVec left, TVec right);

    /// <summary>
    /// <see cref="Count"/> values from <c>source[elementOffset..]</c>, stored as float or double, widened exactly to T,
    /// which is double (the per-channel loops of <see cref="ChannelLoop"/>).
    /// </summary>
    static abstract TVec LoadWidened<TSource>(ref TSource source, nuint elementOffset)
        where TSource : unmanaged;

    /// <summary>
    /// Stores the lanes (T is double) into <c>destination[elementOffset..]</c>, stored as float or double, each rounded
    /// to the nearest <typeparamref name="TDestination"/> (the scalar cast).
    /// </summary>
    static abstract void StoreNarrowed<TDestination>(TVec value, ref TDestination destination, nuint elementOffset)
        where TDestination : unmanaged;

    /// <summary>Each lane (T is double) rounded to the nearest <typeparamref name="TTarget"/> and widened back: identity for double.</summary>
    static abstract TVec RoundTo<TTarget>(TVec value)
        where TTarget : unmanaged;

    /// <summary>
    /// The vector of T whose lanes are those of <paramref name="lower"/> and then <paramref name="upper"/>, double vectors
    /// of the same width, each rounded to the nearest T (the scalar cast), in registers. For double, one double vector
    /// holds them all and <paramref name="upper"/> is not read.
    /// </summary>
    static abstract TVec NarrowFrom<TWide>(TWide lower, TWide upper)
        where TWide : struct;
}

internal readonly struct Vector512Ops<T> : IVectorOps<Vector512<T>, T>
    where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public static int Count => Vector512<T>.Count;

    public static Vector512<T> Zero => Vector512<T>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Broadcast(T value) => Vector512.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Load(ref T source, nuint elementOffset) => Vector512.LoadUnsafe(ref source, elementOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<T> value, ref T destination, nuint elementOffset) => value.StoreUnsafe(ref destination, elementOffset);

    public static bool CanStream => Avx512F.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreStreaming(Vector512<T> value, ref T destination, nuint elementOffset)
    {
        if (Avx512F.IsSupported)
        {
            Avx512F.StoreAlignedNonTemporal((byte*)Unsafe.AsPointer(ref Unsafe.Add(ref destination, elementOffset)), value.AsByte());
        }
        else
        {
            value.StoreUnsafe(ref destination, elementOffset);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Add(Vector512<T> left, Vector512<T> right) => left + right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Subtract(Vector512<T> left, Vector512<T> right) => left - right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Multiply(Vector512<T> left, Vector512<T> right) => left * right;

    public static double SumToDouble(Vector512<T> value) =>
        Vector256Ops<T>.SumToDouble(value.GetLower()) + Vector256Ops<T>.SumToDouble(value.GetUpper());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Divide(Vector512<T> left, Vector512<T> right) => left / right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Negate(Vector512<T> value) => -value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> SquareRoot(Vector512<T> value) => Vector512.Sqrt(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Max(Vector512<T> left, Vector512<T> right) => Vector512.Max(left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool LessThanOrEqualAll(Vector512<T> left, Vector512<T> right) => Vector512.LessThanOrEqualAll(left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> LanesBelow(int count) => Vector512.LessThan(Vector512<T>.Indices, Vector512.Create(T.CreateTruncating(count)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Select(Vector512<T> mask, Vector512<T> left, Vector512<T> right) => Vector512.ConditionalSelect(mask, left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> LoadWidened<TSource>(ref TSource source, nuint elementOffset)
        where TSource : unmanaged
    {
        Debug.Assert(typeof(T) == typeof(double) && (typeof(TSource) == typeof(float) || typeof(TSource) == typeof(double)));
        return typeof(TSource) == typeof(double)
            ? Vector512.LoadUnsafe(ref Unsafe.As<TSource, T>(ref source), elementOffset)
            : Vector512.WidenLower(Vector256.LoadUnsafe(ref Unsafe.As<TSource, float>(ref source), elementOffset).ToVector512Unsafe()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreNarrowed<TDestination>(Vector512<T> value, ref TDestination destination, nuint elementOffset)
        where TDestination : unmanaged
    {
        Debug.Assert(typeof(T) == typeof(double) && (typeof(TDestination) == typeof(float) || typeof(TDestination) == typeof(double)));
        Vector512<double> d = value.As<T, double>();
        if (typeof(TDestination) == typeof(double))
        {
            d.StoreUnsafe(ref Unsafe.As<TDestination, double>(ref destination), elementOffset);
        }
        else
        {
            ToSingle(d).StoreUnsafe(ref Unsafe.As<TDestination, float>(ref destination), elementOffset);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> RoundTo<TTarget>(Vector512<T> value)
        where TTarget : unmanaged
    {
        Debug.Assert(typeof(T) == typeof(double) && (typeof(TTarget) == typeof(float) || typeof(TTarget) == typeof(double)));
        if (typeof(TTarget) == typeof(double))
        {
            return value;
        }

        return Vector512.WidenLower(ToSingle(value.As<T, double>()).ToVector512Unsafe()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> NarrowFrom<TWide>(TWide lower, TWide upper)
        where TWide : struct
    {
        Debug.Assert(typeof(TWide) == typeof(Vector512<double>) && (typeof(T) == typeof(float) || typeof(T) == typeof(double)));
        return typeof(T) == typeof(double)
            ? Unsafe.As<TWide, Vector512<T>>(ref lower)
            : Vector512.Narrow(Unsafe.As<TWide, Vector512<double>>(ref lower), Unsafe.As<TWide, Vector512<double>>(ref upper)).As<float, T>();
    }

    /// <summary>
    /// Each lane rounded to float: one <c>vcvtpd2ps</c> (<c>Narrow(d, d).GetLower()</c> converted d twice and joined the
    /// halves; the same bits).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ToSingle(Vector512<double> d) =>
        Avx512F.IsSupported ? Avx512F.ConvertToVector256Single(d) : Vector512.Narrow(d, d).GetLower();
}

internal readonly struct Vector256Ops<T> : IVectorOps<Vector256<T>, T>
    where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public static int Count => Vector256<T>.Count;

    public static Vector256<T> Zero => Vector256<T>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Broadcast(T value) => Vector256.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Load(ref T source, nuint elementOffset) => Vector256.LoadUnsafe(ref source, elementOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<T> value, ref T destination, nuint elementOffset) => value.StoreUnsafe(ref destination, elementOffset);

    public static bool CanStream => Avx.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreStreaming(Vector256<T> value, ref T destination, nuint elementOffset)
    {
        if (Avx.IsSupported)
        {
            Avx.StoreAlignedNonTemporal((byte*)Unsafe.AsPointer(ref Unsafe.Add(ref destination, elementOffset)), value.AsByte());
        }
        else
        {
            value.StoreUnsafe(ref destination, elementOffset);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Add(Vector256<T> left, Vector256<T> right) => left + right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Subtract(Vector256<T> left, Vector256<T> right) => left - right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Multiply(Vector256<T> left, Vector256<T> right) => left * right;

    public static double SumToDouble(Vector256<T> value) =>
        Vector128Ops<T>.SumToDouble(value.GetLower()) + Vector128Ops<T>.SumToDouble(value.GetUpper());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Divide(Vector256<T> left, Vector256<T> right) => left / right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Negate(Vector256<T> value) => -value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> SquareRoot(Vector256<T> value) => Vector256.Sqrt(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Max(Vector256<T> left, Vector256<T> right) => Vector256.Max(left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool LessThanOrEqualAll(Vector256<T> left, Vector256<T> right) => Vector256.LessThanOrEqualAll(left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> LanesBelow(int count) => Vector256.LessThan(Vector256<T>.Indices, Vector256.Create(T.CreateTruncating(count)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Select(Vector256<T> mask, Vector256<T> left, Vector256<T> right) => Vector256.ConditionalSelect(mask, left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> LoadWidened<TSource>(ref TSource source, nuint elementOffset)
        where TSource : unmanaged
    {
        Debug.Assert(typeof(T) == typeof(double) && (typeof(TSource) == typeof(float) || typeof(TSource) == typeof(double)));
        return typeof(TSource) == typeof(double)
            ? Vector256.LoadUnsafe(ref Unsafe.As<TSource, T>(ref source), elementOffset)
            : Vector256.WidenLower(Vector128.LoadUnsafe(ref Unsafe.As<TSource, float>(ref source), elementOffset).ToVector256Unsafe()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreNarrowed<TDestination>(Vector256<T> value, ref TDestination destination, nuint elementOffset)
        where TDestination : unmanaged
    {
        Debug.Assert(typeof(T) == typeof(double) && (typeof(TDestination) == typeof(float) || typeof(TDestination) == typeof(double)));
        Vector256<double> d = value.As<T, double>();
        if (typeof(TDestination) == typeof(double))
        {
            d.StoreUnsafe(ref Unsafe.As<TDestination, double>(ref destination), elementOffset);
        }
        else
        {
            ToSingle(d).StoreUnsafe(ref Unsafe.As<TDestination, float>(ref destination), elementOffset);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> RoundTo<TTarget>(Vector256<T> value)
        where TTarget : unmanaged
    {
        Debug.Assert(typeof(T) == typeof(double) && (typeof(TTarget) == typeof(float) || typeof(TTarget) == typeof(double)));
        if (typeof(TTarget) == typeof(double))
        {
            return value;
        }

        return Vector256.WidenLower(ToSingle(value.As<T, double>()).ToVector256Unsafe()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> NarrowFrom<TWide>(TWide lower, TWide upper)
        where TWide : struct
    {
        Debug.Assert(typeof(TWide) == typeof(Vector256<double>) && (typeof(T) == typeof(float) || typeof(T) == typeof(double)));
        return typeof(T) == typeof(double)
            ? Unsafe.As<TWide, Vector256<T>>(ref lower)
            : Vector256.Narrow(Unsafe.As<TWide, Vector256<double>>(ref lower), Unsafe.As<TWide, Vector256<double>>(ref upper)).As<float, T>();
    }

    /// <summary>Each lane rounded to float: one <c>vcvtpd2ps</c> on x86 (see <see cref="Vector512Ops{T}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> ToSingle(Vector256<double> d) =>
        Avx.IsSupported ? Avx.ConvertToVector128Single(d) : Vector256.Narrow(d, d).GetLower();
}

internal readonly struct Vector128Ops<T> : IVectorOps<Vector128<T>, T>
    where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public static int Count => Vector128<T>.Count;

    public static Vector128<T> Zero => Vector128<T>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Broadcast(T value) => Vector128.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Load(ref T source, nuint elementOffset) => Vector128.LoadUnsafe(ref source, elementOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<T> value, ref T destination, nuint elementOffset) => value.StoreUnsafe(ref destination, elementOffset);

    public static bool CanStream => Sse2.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void StoreStreaming(Vector128<T> value, ref T destination, nuint elementOffset)
    {
        if (Sse2.IsSupported)
        {
            Sse2.StoreAlignedNonTemporal((byte*)Unsafe.AsPointer(ref Unsafe.Add(ref destination, elementOffset)), value.AsByte());
        }
        else
        {
            value.StoreUnsafe(ref destination, elementOffset);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Add(Vector128<T> left, Vector128<T> right) => left + right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Subtract(Vector128<T> left, Vector128<T> right) => left - right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Multiply(Vector128<T> left, Vector128<T> right) => left * right;

    public static double SumToDouble(Vector128<T> value)
    {
        double sum = 0;
        for (int i = 0; i < Vector128<T>.Count; i++)
        {
            sum += double.CreateTruncating(value.GetElement(i));
        }

        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Divide(Vector128<T> left, Vector128<T> right) => left / right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Negate(Vector128<T> value) => -value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> SquareRoot(Vector128<T> value) => Vector128.Sqrt(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Max(Vector128<T> left, Vector128<T> right) => Vector128.Max(left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool LessThanOrEqualAll(Vector128<T> left, Vector128<T> right) => Vector128.LessThanOrEqualAll(left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> LanesBelow(int count) => Vector128.LessThan(Vector128<T>.Indices, Vector128.Create(T.CreateTruncating(count)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Select(Vector128<T> mask, Vector128<T> left, Vector128<T> right) => Vector128.ConditionalSelect(mask, left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> LoadWidened<TSource>(ref TSource source, nuint elementOffset)
        where TSource : unmanaged
    {
        Debug.Assert(typeof(T) == typeof(double) && (typeof(TSource) == typeof(float) || typeof(TSource) == typeof(double)));
        return typeof(TSource) == typeof(double)
            ? Vector128.LoadUnsafe(ref Unsafe.As<TSource, T>(ref source), elementOffset)
            : Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(ref Unsafe.As<TSource, byte>(ref Unsafe.Add(ref source, elementOffset)))).AsSingle()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreNarrowed<TDestination>(Vector128<T> value, ref TDestination destination, nuint elementOffset)
        where TDestination : unmanaged
    {
        Debug.Assert(typeof(T) == typeof(double) && (typeof(TDestination) == typeof(float) || typeof(TDestination) == typeof(double)));
        Vector128<double> d = value.As<T, double>();
        if (typeof(TDestination) == typeof(double))
        {
            d.StoreUnsafe(ref Unsafe.As<TDestination, double>(ref destination), elementOffset);
        }
        else
        {
            Unsafe.WriteUnaligned(ref Unsafe.As<TDestination, byte>(ref Unsafe.Add(ref destination, elementOffset)), ToSingle(d).AsInt64().ToScalar());
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> RoundTo<TTarget>(Vector128<T> value)
        where TTarget : unmanaged
    {
        Debug.Assert(typeof(T) == typeof(double) && (typeof(TTarget) == typeof(float) || typeof(TTarget) == typeof(double)));
        if (typeof(TTarget) == typeof(double))
        {
            return value;
        }

        return Vector128.WidenLower(ToSingle(value.As<T, double>())).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> NarrowFrom<TWide>(TWide lower, TWide upper)
        where TWide : struct
    {
        Debug.Assert(typeof(TWide) == typeof(Vector128<double>) && (typeof(T) == typeof(float) || typeof(T) == typeof(double)));
        return typeof(T) == typeof(double)
            ? Unsafe.As<TWide, Vector128<T>>(ref lower)
            : Vector128.Narrow(Unsafe.As<TWide, Vector128<double>>(ref lower), Unsafe.As<TWide, Vector128<double>>(ref upper)).As<float, T>();
    }

    /// <summary>Both lanes rounded to float in the lower two (the upper two are not used): one <c>cvtpd2ps</c> on x86.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> ToSingle(Vector128<double> d) =>
        Sse2.IsSupported ? Sse2.ConvertToVector128Single(d) : Vector128.Narrow(d, d);
}

/// <summary>The scalar path: a "vector" of one element, so the same generic drivers serve it.</summary>
internal readonly struct ScalarOps<T> : IVectorOps<T, T>
    where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public static int Count => 1;

    public static T Zero => T.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Broadcast(T value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Load(ref T source, nuint elementOffset) => Unsafe.Add(ref source, elementOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(T value, ref T destination, nuint elementOffset) => Unsafe.Add(ref destination, elementOffset) = value;

    public static bool CanStream => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreStreaming(T value, ref T destination, nuint elementOffset) => Unsafe.Add(ref destination, elementOffset) = value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Add(T left, T right) => left + right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Subtract(T left, T right) => left - right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Multiply(T left, T right) => left * right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double SumToDouble(T value) => double.CreateTruncating(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Divide(T left, T right) => left / right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Negate(T value) => -value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T SquareRoot(T value) => T.Sqrt(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Max(T left, T right) => T.Max(left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool LessThanOrEqualAll(T left, T right) => left <= right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T LanesBelow(int count) => count > 0 ? T.One : T.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Select(T mask, T left, T right) => mask != T.Zero ? left : right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T LoadWidened<TSource>(ref TSource source, nuint elementOffset)
        where TSource : unmanaged
    {
        Debug.Assert(typeof(TSource) == typeof(float) || typeof(TSource) == typeof(double));
        return typeof(TSource) == typeof(float)
            ? T.CreateTruncating(Unsafe.As<TSource, float>(ref Unsafe.Add(ref source, elementOffset)))
            : T.CreateTruncating(Unsafe.As<TSource, double>(ref Unsafe.Add(ref source, elementOffset)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreNarrowed<TDestination>(T value, ref TDestination destination, nuint elementOffset)
        where TDestination : unmanaged
    {
        Debug.Assert(typeof(TDestination) == typeof(float) || typeof(TDestination) == typeof(double));
        if (typeof(TDestination) == typeof(float))
        {
            Unsafe.As<TDestination, float>(ref Unsafe.Add(ref destination, elementOffset)) = float.CreateTruncating(value);
        }
        else
        {
            Unsafe.As<TDestination, double>(ref Unsafe.Add(ref destination, elementOffset)) = double.CreateTruncating(value);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T RoundTo<TTarget>(T value)
        where TTarget : unmanaged
    {
        Debug.Assert(typeof(TTarget) == typeof(float) || typeof(TTarget) == typeof(double));
        return typeof(TTarget) == typeof(float) ? T.CreateTruncating(float.CreateTruncating(value)) : value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T NarrowFrom<TWide>(TWide lower, TWide upper)
        where TWide : struct
    {
        Debug.Assert(typeof(TWide) == typeof(double));
        return T.CreateTruncating(Unsafe.As<TWide, double>(ref lower));
    }
}
