using System;
using System.Collections.Generic;
using System.Numerics;

namespace BatchNorm.Initializers;

/// <summary>
/// Fills a new weight with its starting values, as a Keras initializer does (<c>keras.initializers</c>).
/// A string converts implicitly through <see cref="Get(string)"/>, so <c>gammaInitializer: "ones"</c> works as in Keras.
/// </summary>
public abstract class Initializer
{
    /// <summary>The Keras class name, e.g. <c>"Zeros"</c> or <c>"RandomNormal"</c>.</summary>
    public abstract string ClassName { get; }

    /// <summary>Fills <paramref name="destination"/> with this initializer's values, computed in double precision.</summary>
    public abstract void Initialize(Span<double> destination);

    /// <summary>Fills <paramref name="destination"/>, computing in double precision and rounding each value once.</summary>
    public void Initialize<T>(Span<T> destination)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var values = new double[destination.Length];
        Initialize(values);
        for (int i = 0; i < values.Length; i++)
        {
            destination[i] = T.CreateTruncating(values[i]);
        }
    }

    /// <summary>The Keras <c>get_config()</c> entries: argument names in snake_case and their values.</summary>
    public virtual IReadOnlyDictionary<string, object?> GetConfig() => new Dictionary<string, object?>();

    /// <summary>
    /// Resolves a Keras initializer name: <c>"zeros"</c>, <c>"ones"</c>, <c>"constant"</c>, <c>"random_normal"</c>,
    /// <c>"random_uniform"</c>, <c>"truncated_normal"</c>, or the class names (<c>"Zeros"</c>, <c>"RandomNormal"</c>, ...),
    /// each with its Keras default arguments.
    /// </summary>
    /// <exception cref="ArgumentException">The name is not one of those.</exception>
    public static Initializer Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return KerasNames.Normalize(name) switch
        {
            "zeros" => new Zeros(),
            "ones" => new Ones(),
            "constant" => new Constant(),
            "randomnormal" => new RandomNormal(),
            "randomuniform" => new RandomUniform(),
            "truncatednormal" => new TruncatedNormal(),
            _ => throw new ArgumentException(
                $"Unknown initializer '{name}'. Expected one of: zeros, ones, constant, random_normal, random_uniform, truncated_normal.",
                nameof(name)),
        };
    }

    /// <summary>Resolves a Keras initializer name; see <see cref="Get(string)"/>.</summary>
    public static implicit operator Initializer(string name) => Get(name);

    /// <summary>Formats the Keras class name and configuration.</summary>
    public override string ToString() => KerasNames.Describe(ClassName, GetConfig());
}

/// <summary>Keras <c>Zeros</c>: every value 0.</summary>
public sealed class Zeros : Initializer
{
    /// <inheritdoc/>
    public override string ClassName => "Zeros";

    /// <inheritdoc/>
    public override void Initialize(Span<double> destination) => destination.Clear();
}

/// <summary>Keras <c>Ones</c>: every value 1.</summary>
public sealed class Ones : Initializer
{
    /// <inheritdoc/>
    public override string ClassName => "Ones";

    /// <inheritdoc/>
    public override void Initialize(Span<double> destination) => destination.Fill(1.0);
}

/// <summary>Keras <c>Constant(value=0.0)</c>: every value <see cref="Value"/>.</summary>
public sealed class Constant : Initializer
{
    /// <summary>Creates the initializer.</summary>
    /// <param name="value">The value (Keras <c>value</c>, default 0).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="value"/> is NaN.</exception>
    public Constant(double value = 0.0)
    {
        if (double.IsNaN(value))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(value), value, "Expected a number, not NaN.");
        }

        Value = value;
    }

    /// <summary>The value every element gets.</summary>
    public double Value { get; }

    /// <inheritdoc/>
    public override string ClassName => "Constant";

    /// <inheritdoc/>
    public override void Initialize(Span<double> destination) => destination.Fill(Value);

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object?> GetConfig() => new Dictionary<string, object?> { ["value"] = Value };
}

/// <summary>Base of the seedable random initializers.</summary>
/// <remarks>
/// As in Keras 3, a seeded initializer produces the same values on every call; an unseeded one differs per call.
/// The generator is .NET's <see cref="Random"/>, so values do not match Keras' draws for the same seed.
/// </remarks>
public abstract class RandomInitializer : Initializer
{
    /// <summary>Sets the seed (Keras <c>seed</c>; null for a different draw each call).</summary>
    protected RandomInitializer(int? seed) => Seed = seed;

    /// <summary>The seed, or null.</summary>
    public int? Seed { get; }

    /// <summary>A generator for one <see cref="Initializer.Initialize(Span{double})"/> call.</summary>
    protected Random CreateRandom() => Seed is int seed ? new Random(seed) : new Random();

    /// <summary>One standard normal draw (Box-Muller on two uniforms in (0, 1]).</summary>
    protected static double NextStandardNormal(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Validates a distribution parameter: finite, and positive where <paramref name="positive"/>.</summary>
    private protected static double Check(double value, string paramName, bool positive = false)
    {
        if (!double.IsFinite(value) || (positive && value <= 0))
        {
            ThrowHelper.ThrowArgumentOutOfRange(paramName, value, positive ? "Expected a finite value > 0." : "Expected a finite value.");
        }

        return value;
    }
}

/// <summary>Base of the normal-distribution initializers: a mean and a standard deviation.</summary>
public abstract class NormalInitializer : RandomInitializer
{
    /// <summary>Validates and stores the parameters.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A parameter is not finite, or <paramref name="stddev"/> &lt;= 0.</exception>
    protected NormalInitializer(double mean, double stddev, int? seed)
        : base(seed)
    {
        Mean = Check(mean, nameof(mean));
        Stddev = Check(stddev, nameof(stddev), positive: true);
    }

    /// <summary>The mean (Keras <c>mean</c>).</summary>
    public double Mean { get; }

    /// <summary>The standard deviation (Keras <c>stddev</c>; of the untruncated distribution for <see cref="TruncatedNormal"/>).</summary>
    public double Stddev { get; }

    /// <inheritdoc/>
    public override void Initialize(Span<double> destination)
    {
        Random random = CreateRandom();
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = Mean + (Stddev * NextDraw(random));
        }
    }

    /// <summary>One draw of the standardized distribution.</summary>
    protected abstract double NextDraw(Random random);

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object?> GetConfig() =>
        new Dictionary<string, object?> { ["seed"] = Seed, ["mean"] = Mean, ["stddev"] = Stddev };
}

/// <summary>Keras <c>RandomNormal(mean=0.0, stddev=0.05, seed=None)</c>: draws from N(mean, stddev^2).</summary>
public sealed class RandomNormal : NormalInitializer
{
    /// <summary>Creates the initializer.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A parameter is not finite, or <paramref name="stddev"/> &lt;= 0.</exception>
    public RandomNormal(double mean = 0.0, double stddev = 0.05, int? seed = null)
        : base(mean, stddev, seed)
    {
    }

    /// <inheritdoc/>
    public override string ClassName => "RandomNormal";

    /// <inheritdoc/>
    protected override double NextDraw(Random random) => NextStandardNormal(random);
}

/// <summary>Keras <c>RandomUniform(minval=-0.05, maxval=0.05, seed=None)</c>: draws uniformly from [minval, maxval).</summary>
public sealed class RandomUniform : RandomInitializer
{
    /// <summary>Creates the initializer.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A bound is not finite, or <paramref name="maxval"/> &lt; <paramref name="minval"/>.</exception>
    public RandomUniform(double minval = -0.05, double maxval = 0.05, int? seed = null)
        : base(seed)
    {
        Minval = Check(minval, nameof(minval));
        Maxval = Check(maxval, nameof(maxval));
        if (maxval < minval)
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(maxval), maxval, $"Expected maxval >= minval ({minval}).");
        }
    }

    /// <summary>The lower bound (inclusive).</summary>
    public double Minval { get; }

    /// <summary>The upper bound (exclusive).</summary>
    public double Maxval { get; }

    /// <inheritdoc/>
    public override string ClassName => "RandomUniform";

    /// <inheritdoc/>
    public override void Initialize(Span<double> destination)
    {
        Random random = CreateRandom();
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = Minval + ((Maxval - Minval) * random.NextDouble());
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object?> GetConfig() =>
        new Dictionary<string, object?> { ["seed"] = Seed, ["minval"] = Minval, ["maxval"] = Maxval };
}

/// <summary>
/// Keras <c>TruncatedNormal(mean=0.0, stddev=0.05, seed=None)</c>: draws from N(mean, stddev^2), redrawing any value
/// more than two standard deviations from the mean.
/// </summary>
public sealed class TruncatedNormal : NormalInitializer
{
    /// <summary>Creates the initializer.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A parameter is not finite, or <paramref name="stddev"/> &lt;= 0.</exception>
    public TruncatedNormal(double mean = 0.0, double stddev = 0.05, int? seed = null)
        : base(mean, stddev, seed)
    {
    }

    /// <inheritdoc/>
    public override string ClassName => "TruncatedNormal";

    /// <inheritdoc/>
    protected override double NextDraw(Random random)
    {
        double z;
        do
        {
            z = NextStandardNormal(random);
        }
        while (Math.Abs(z) > 2.0);

        return z;
    }
}
