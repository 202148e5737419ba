using System;
using System.Collections.Generic;
using System.Numerics;

namespace BatchNorm.Regularizers;

/// <summary>
/// A penalty on a weight that is added to the model's loss, as a Keras regularizer does (<c>keras.regularizers</c>).
/// The layer reports it through <see cref="BatchNormalization{T}.Losses"/>; the training loop adds it to the loss.
/// A string converts implicitly through <see cref="Get(string)"/> (<c>"l1"</c>, <c>"l2"</c>, <c>"l1_l2"</c>).
/// </summary>
public abstract class Regularizer
{
    /// <summary>The Keras class name, e.g. <c>"L2"</c>.</summary>
    public abstract string ClassName { get; }

    /// <summary>The penalty for <paramref name="weights"/>, accumulated in double precision.</summary>
    public abstract double Compute<T>(ReadOnlySpan<T> weights)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>;

    /// <summary>
    /// Adds the penalty's gradient with respect to each weight to <paramref name="gradient"/> (in double precision).
    /// <see cref="BatchNormalization{T}.Backward(Tensors.NdArray{T}, bool)"/> calls it when asked to include regularization.
    /// </summary>
    public abstract void AddGradient<T>(ReadOnlySpan<T> weights, Span<double> gradient)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>;

    /// <summary>The Keras <c>get_config()</c> entries.</summary>
    public abstract IReadOnlyDictionary<string, object?> GetConfig();

    /// <summary>
    /// Resolves a Keras regularizer name with Keras defaults: <c>"l1"</c> (L1(0.01)), <c>"l2"</c> (L2(0.01)),
    /// <c>"l1_l2"</c> (L1L2(0, 0)), or the class names <c>"L1"</c>, <c>"L2"</c>, <c>"L1L2"</c>.
    /// </summary>
    /// <exception cref="ArgumentException">The name is not one of those.</exception>
    public static Regularizer Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return KerasNames.Normalize(name) switch
        {
            "l1" => new L1(),
            "l2" => new L2(),
            "l1l2" => new L1L2(),
            _ => throw new ArgumentException($"Unknown regularizer '{name}'. Expected one of: l1, l2, l1_l2.", nameof(name)),
        };
    }

    /// <summary>Resolves a Keras regularizer name; see <see cref="Get(string)"/>.</summary>
    public static implicit operator Regularizer(string name) => Get(name);

    /// <summary>Formats the Keras class name and configuration.</summary>
    public override string ToString() => KerasNames.Describe(ClassName, GetConfig());

    /// <summary>Keras' rule for a regularization factor: a finite number &gt;= 0.</summary>
    private protected static double CheckFactor(double value, string paramName)
    {
        if (!double.IsFinite(value) || value < 0)
        {
            ThrowHelper.ThrowArgumentOutOfRange(paramName, value, "Expected a finite, non-negative factor.");
        }

        return value;
    }

    private protected static double SumAbs<T>(ReadOnlySpan<T> weights)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        double sum = 0;
        foreach (T w in weights)
        {
            sum += Math.Abs(double.CreateTruncating(w));
        }

        return sum;
    }

    /// <summary>Adds <c>l1 * sign(w) + 2 * l2 * w</c> (sign(0) = 0, TensorFlow's subgradient of |w| at 0).</summary>
    private protected static void AddElementGradient<T>(ReadOnlySpan<T> weights, Span<double> gradient, double l1, double l2)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        for (int i = 0; i < weights.Length; i++)
        {
            double w = double.CreateTruncating(weights[i]);
            gradient[i] += (l1 * Math.Sign(w)) + (2 * l2 * w);
        }
    }

    private protected static double SumSquares<T>(ReadOnlySpan<T> weights)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        double sum = 0;
        foreach (T w in weights)
        {
            double v = double.CreateTruncating(w);
            sum += v * v;
        }

        return sum;
    }
}

/// <summary>Keras <c>L1(l1=0.01)</c>: <c>loss = l1 * sum(|w|)</c>.</summary>
public sealed class L1 : Regularizer
{
    /// <summary>Creates the regularizer.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="l1"/> is negative or not finite.</exception>
    public L1(double l1 = 0.01) => Factor = CheckFactor(l1, nameof(l1));

    /// <summary>The factor (Keras <c>l1</c>).</summary>
    public double Factor { get; }

    /// <inheritdoc/>
    public override string ClassName => "L1";

    /// <inheritdoc/>
    public override double Compute<T>(ReadOnlySpan<T> weights) => Factor * SumAbs(weights);

    /// <inheritdoc/>
    /// <remarks>d/dw = l1 * sign(w), with sign(0) = 0.</remarks>
    public override void AddGradient<T>(ReadOnlySpan<T> weights, Span<double> gradient) => AddElementGradient(weights, gradient, Factor, 0);

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object?> GetConfig() => new Dictionary<string, object?> { ["l1"] = Factor };
}

/// <summary>Keras <c>L2(l2=0.01)</c>: <c>loss = l2 * sum(w^2)</c> (no factor 1/2).</summary>
public sealed class L2 : Regularizer
{
    /// <summary>Creates the regularizer.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="l2"/> is negative or not finite.</exception>
    public L2(double l2 = 0.01) => Factor = CheckFactor(l2, nameof(l2));

    /// <summary>The factor (Keras <c>l2</c>).</summary>
    public double Factor { get; }

    /// <inheritdoc/>
    public override string ClassName => "L2";

    /// <inheritdoc/>
    public override double Compute<T>(ReadOnlySpan<T> weights) => Factor * SumSquares(weights);

    /// <inheritdoc/>
    /// <remarks>d/dw = 2 * l2 * w.</remarks>
    public override void AddGradient<T>(ReadOnlySpan<T> weights, Span<double> gradient) => AddElementGradient(weights, gradient, 0, Factor);

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object?> GetConfig() => new Dictionary<string, object?> { ["l2"] = Factor };
}

/// <summary>Keras <c>L1L2(l1=0.0, l2=0.0)</c>: <c>loss = l1 * sum(|w|) + l2 * sum(w^2)</c>.</summary>
public sealed class L1L2 : Regularizer
{
    /// <summary>Creates the regularizer.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A factor is negative or not finite.</exception>
    public L1L2(double l1 = 0.0, double l2 = 0.0)
    {
        L1Factor = CheckFactor(l1, nameof(l1));
        L2Factor = CheckFactor(l2, nameof(l2));
    }

    /// <summary>The L1 factor (Keras <c>l1</c>).</summary>
    public double L1Factor { get; }

    /// <summary>The L2 factor (Keras <c>l2</c>).</summary>
    public double L2Factor { get; }

    /// <inheritdoc/>
    public override string ClassName => "L1L2";

    /// <inheritdoc/>
    public override double Compute<T>(ReadOnlySpan<T> weights) =>
        (L1Factor * SumAbs(weights)) + (L2Factor * SumSquares(weights));

    /// <inheritdoc/>
    /// <remarks>d/dw = l1 * sign(w) + 2 * l2 * w, with sign(0) = 0.</remarks>
    public override void AddGradient<T>(ReadOnlySpan<T> weights, Span<double> gradient) => AddElementGradient(weights, gradient, L1Factor, L2Factor);

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object?> GetConfig() =>
        new Dictionary<string, object?> { ["l1"] = L1Factor, ["l2"] = L2Factor };
}
