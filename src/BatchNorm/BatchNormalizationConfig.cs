using BatchNorm.Constraints;
using BatchNorm.Initializers;
using BatchNorm.Regularizers;
using BatchNorm.Serialization;

namespace BatchNorm;

/// <summary>
/// The arguments of a <see cref="BatchNormalization{T}"/> layer, one property per Keras <c>get_config()</c> key
/// (<c>name</c>, <c>trainable</c>, <c>dtype</c>, <c>axis</c>, <c>momentum</c>, <c>epsilon</c>, <c>center</c>,
/// <c>scale</c>, the four initializers, two regularizers and two constraints, <c>synchronized</c>, <c>renorm</c>,
/// <c>renorm_clipping</c>, <c>renorm_momentum</c>). Defaults are Keras' defaults.
/// </summary>
public sealed record BatchNormalizationConfig
{
    /// <summary>Keras <c>name</c>.</summary>
    public string Name { get; init; } = "batch_normalization";

    /// <summary>Keras <c>trainable</c>.</summary>
    public bool Trainable { get; init; } = true;

    /// <summary>Keras <c>dtype</c>: <c>"float32"</c> or <c>"float64"</c>; null accepts either.</summary>
    public string? DType { get; init; } = "float32";

    /// <summary>Keras <c>axis</c>.</summary>
    public int Axis { get; init; } = -1;

    /// <summary>Keras <c>momentum</c>.</summary>
    public double Momentum { get; init; } = 0.99;

    /// <summary>Keras <c>epsilon</c>.</summary>
    public double Epsilon { get; init; } = 1e-3;

    /// <summary>Keras <c>center</c>.</summary>
    public bool Center { get; init; } = true;

    /// <summary>Keras <c>scale</c>.</summary>
    public bool Scale { get; init; } = true;

    /// <summary>Keras <c>beta_initializer</c>; null means <see cref="Zeros"/>.</summary>
    public Initializer? BetaInitializer { get; init; }

    /// <summary>Keras <c>gamma_initializer</c>; null means <see cref="Ones"/>.</summary>
    public Initializer? GammaInitializer { get; init; }

    /// <summary>Keras <c>moving_mean_initializer</c>; null means <see cref="Zeros"/>.</summary>
    public Initializer? MovingMeanInitializer { get; init; }

    /// <summary>Keras <c>moving_variance_initializer</c>; null means <see cref="Ones"/>.</summary>
    public Initializer? MovingVarianceInitializer { get; init; }

    /// <summary>Keras <c>beta_regularizer</c>.</summary>
    public Regularizer? BetaRegularizer { get; init; }

    /// <summary>Keras <c>gamma_regularizer</c>.</summary>
    public Regularizer? GammaRegularizer { get; init; }

    /// <summary>Keras <c>beta_constraint</c>.</summary>
    public Constraint? BetaConstraint { get; init; }

    /// <summary>Keras <c>gamma_constraint</c>.</summary>
    public Constraint? GammaConstraint { get; init; }

    /// <summary>Keras <c>synchronized</c>.</summary>
    public bool Synchronized { get; init; }

    /// <summary>Keras <c>renorm</c>.</summary>
    public bool Renorm { get; init; }

    /// <summary>Keras <c>renorm_clipping</c>.</summary>
    public RenormClipping? RenormClipping { get; init; }

    /// <summary>Keras <c>renorm_momentum</c>.</summary>
    public double RenormMomentum { get; init; } = 0.99;

    /// <summary>Writes the Keras 3 <c>get_config()</c> JSON (see <see cref="KerasConfigJson.Write"/>).</summary>
    public string ToJson(bool indented = false) => KerasConfigJson.Write(this, indented);

    /// <summary>Reads a Keras <c>get_config()</c> JSON object or a model JSON layer entry (see <see cref="KerasConfigJson.Read"/>).</summary>
    /// <exception cref="System.FormatException">The JSON is malformed or invalid; the message names the key.</exception>
    public static BatchNormalizationConfig FromJson(string json) => KerasConfigJson.Read(json);
}
