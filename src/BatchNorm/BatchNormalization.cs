using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BatchNorm.Constraints;
using BatchNorm.Initializers;
using BatchNorm.Kernels;
using BatchNorm.Regularizers;
using BatchNorm.Tensors;

namespace BatchNorm;

/// <summary>
/// The Keras 3 <c>BatchNormalization</c> layer: normalizes each channel of its input to zero mean and unit variance,
/// then scales by <c>gamma</c> and shifts by <c>beta</c>.
/// </summary>
/// <typeparam name="T">The element type of inputs, outputs and weights: <see cref="float"/> (Keras <c>"float32"</c>,
/// also available as the non-generic <see cref="BatchNormalization"/>) or <see cref="double"/> (<c>"float64"</c>).</typeparam>
/// <remarks>
/// <para>
/// For channel <c>c</c> (the input's <see cref="Axis"/> dimension), reducing over every other axis with <c>n</c> elements:
/// </para>
/// <list type="bullet">
/// <item><description>Training (<c>training: true</c> and <see cref="Trainable"/>): <c>mean = sum(x) / n</c>,
/// <c>variance = sum((x - mean)^2) / n</c> (biased, no Bessel correction),
/// <c>y = gamma * (x - mean) / sqrt(variance + epsilon) + beta</c>, and then
/// <c>moving_mean = moving_mean * momentum + mean * (1 - momentum)</c>,
/// <c>moving_variance = moving_variance * momentum + variance * (1 - momentum)</c>.</description></item>
/// <item><description>Inference (the default): <c>y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta</c>;
/// no state changes.</description></item>
/// </list>
/// <para>
/// <c>momentum</c> follows Keras: the weight of the OLD moving value. PyTorch's <c>momentum</c> is the weight of the new
/// batch value, so PyTorch 0.1 is Keras 0.9; PyTorch also stores the unbiased variance in <c>running_var</c> and
/// defaults <c>eps</c> to 1e-5. When <see cref="Trainable"/> is false the layer always runs in inference mode, even when
/// called with <c>training: true</c> (the Keras 2 TF2 and Keras 3 rule).
/// </para>
/// <para>
/// The per-channel map is folded once per call, in double precision, into <c>y = (x - m) * a + b</c> with
/// <c>m</c> = the mean rounded to <typeparamref name="T"/>, <c>a = gamma / sqrt(variance + epsilon)</c> and
/// <c>b = beta - (mean - m) * a</c>: algebraically <c>x * a + (beta - mean * a)</c>, but centred so that a mean
/// that is large against the spread costs no accuracy. Statistics are accumulated with a blocked two-pass
/// algorithm merged in double precision, never with <c>E[x^2] - E[x]^2</c>. Results can differ in the last bits
/// between vector widths (AVX-512, AVX2, SSE/AdvSimd, scalar) because partial sums are added in a different order.
/// </para>
/// <para>
/// Thread safety: inference calls on a built layer may run concurrently: they keep no shared scratch state and only
/// note which input a later <c>Backward</c> would read (after concurrent calls, which one is unspecified). Training
/// calls, <c>Backward</c>, <see cref="Build(NdShape)"/>, <see cref="SetWeights(IReadOnlyList{NdArray{T}})"/> and
/// <see cref="ApplyConstraints"/> mutate or read per-call state and must not overlap with any other call.
/// </para>
/// </remarks>
public partial class BatchNormalization<T>
    where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private readonly int _axis;
    private NdArray<T>? _gamma;
    private NdArray<T>? _beta;
    private NdArray<T>? _movingMean;
    private NdArray<T>? _movingVariance;
    private NdArray<T>? _movingStddev;
    private NdArray<T>? _renormMean;
    private NdArray<T>? _renormStddev;
    private int _builtRank;
    private int _maxDegreeOfParallelism = -1;

    /// <summary>Creates the layer; weights are created by <see cref="Build(NdShape)"/> or the first call.</summary>
    /// <param name="axis">The channel axis (Keras <c>axis</c>, default -1, the last); negative values count from the end.
    /// Checked against the input's rank when the layer is built: -rank &lt;= axis &lt; rank.</param>
    /// <param name="momentum">Keras <c>momentum</c>, in [0, 1]: the weight of the old moving statistic in
    /// <c>moving = moving * momentum + batch * (1 - momentum)</c>. Default 0.99.</param>
    /// <param name="epsilon">Keras <c>epsilon</c>, a finite value &gt; 0 added to the variance. Default 1e-3.</param>
    /// <param name="center">Keras <c>center</c>: create and add <c>beta</c>. False: no beta weight at all.</param>
    /// <param name="scale">Keras <c>scale</c>: create and multiply by <c>gamma</c>. False: no gamma weight at all.</param>
    /// <param name="betaInitializer">Keras <c>beta_initializer</c>, default <see cref="Zeros"/>.</param>
    /// <param name="gammaInitializer">Keras <c>gamma_initializer</c>, default <see cref="Ones"/>.</param>
    /// <param name="movingMeanInitializer">Keras <c>moving_mean_initializer</c>, default <see cref="Zeros"/>.</param>
    /// <param name="movingVarianceInitializer">Keras <c>moving_variance_initializer</c>, default <see cref="Ones"/>.</param>
    /// <param name="betaRegularizer">Keras <c>beta_regularizer</c>, default none.</param>
    /// <param name="gammaRegularizer">Keras <c>gamma_regularizer</c>, default none.</param>
    /// <param name="betaConstraint">Keras <c>beta_constraint</c>, default none.</param>
    /// <param name="gammaConstraint">Keras <c>gamma_constraint</c>, default none.</param>
    /// <param name="trainable">Keras <c>trainable</c>: false makes every call run in inference mode.</param>
    /// <param name="name">Keras <c>name</c>, default <c>"batch_normalization"</c>.</param>
    /// <param name="renorm">Keras <c>renorm</c>: use Batch Renormalization (Ioffe 2017) in training. Adds the
    /// non-trainable weights moving_stddev, renorm_mean and renorm_stddev. Inference is unchanged.</param>
    /// <param name="renormClipping">Keras <c>renorm_clipping</c>: bounds for the correction (r, d); null clips nothing.</param>
    /// <param name="renormMomentum">Keras <c>renorm_momentum</c>, in [0, 1]: the momentum of renorm_mean and renorm_stddev.</param>
    /// <param name="synchronized">Keras <c>synchronized</c>: cross-replica statistics. In one process the batch
    /// statistics are already global, so this only round-trips through the configuration.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="momentum"/> or <paramref name="renormMomentum"/> is NaN
    /// or outside [0, 1], or <paramref name="epsilon"/> is NaN, infinite or &lt;= 0.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither <see cref="float"/> nor <see cref="double"/>.</exception>
    public BatchNormalization(
        int axis = -1,
        double momentum = 0.99,
        double epsilon = 1e-3,
        bool center = true,
        bool scale = true,
        Initializer? betaInitializer = null,
        Initializer? gammaInitializer = null,
        Initializer? movingMeanInitializer = null,
        Initializer? movingVarianceInitializer = null,
        Regularizer? betaRegularizer = null,
        Regularizer? gammaRegularizer = null,
        Constraint? betaConstraint = null,
        Constraint? gammaConstraint = null,
        bool trainable = true,
        string? name = null,
        bool renorm = false,
        RenormClipping? renormClipping = null,
        double renormMomentum = 0.99,
        bool synchronized = false)
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            ThrowHelper.ThrowNotSupportedElementType(typeof(T));
        }

        if (!(momentum >= 0.0 && momentum <= 1.0))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(momentum), momentum,
                "Expected 0 <= momentum <= 1 (Keras convention: the weight of the old moving value; PyTorch's momentum m is Keras' 1 - m).");
        }

        if (!(epsilon > 0.0) || double.IsPositiveInfinity(epsilon))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(epsilon), epsilon, "Expected a finite epsilon > 0.");
        }

        if (!(renormMomentum >= 0.0 && renormMomentum <= 1.0))
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(renormMomentum), renormMomentum, "Expected 0 <= renormMomentum <= 1.");
        }

        _axis = axis;
        Momentum = momentum;
        Renorm = renorm;
        RenormClipping = renorm ? renormClipping ?? new RenormClipping() : renormClipping;
        RenormMomentum = renormMomentum;
        Synchronized = synchronized;
        Epsilon = epsilon;
        Center = center;
        Scale = scale;
        BetaInitializer = betaInitializer ?? new Zeros();
        GammaInitializer = gammaInitializer ?? new Ones();
        MovingMeanInitializer = movingMeanInitializer ?? new Zeros();
        MovingVarianceInitializer = movingVarianceInitializer ?? new Ones();
        BetaRegularizer = betaRegularizer;
        GammaRegularizer = gammaRegularizer;
        BetaConstraint = betaConstraint;
        GammaConstraint = gammaConstraint;
        Trainable = trainable;
        Name = string.IsNullOrEmpty(name) ? "batch_normalization" : name;
    }

    /// <summary>Keras <c>name</c>.</summary>
    public string Name { get; }

    /// <summary>Keras <c>dtype</c>: <c>"float32"</c> for <see cref="float"/>, <c>"float64"</c> for <see cref="double"/>.</summary>
    public string DType => typeof(T) == typeof(float) ? "float32" : "float64";

    /// <summary>Keras <c>axis</c>, as given (possibly negative).</summary>
    public int Axis => _axis;

    /// <summary>Keras <c>momentum</c>: the weight of the old value in <c>moving = moving * momentum + batch * (1 - momentum)</c>.</summary>
    public double Momentum { get; }

    /// <summary>Keras <c>epsilon</c>: added to the variance inside the square root.</summary>
    public double Epsilon { get; }

    /// <summary>Keras <c>center</c>: whether the layer has and adds <see cref="Beta"/>.</summary>
    public bool Center { get; }

    /// <summary>Keras <c>scale</c>: whether the layer has and multiplies by <see cref="Gamma"/>.</summary>
    public bool Scale { get; }

    /// <summary>Keras <c>renorm</c>: whether training uses Batch Renormalization.</summary>
    public bool Renorm { get; }

    /// <summary>Keras <c>renorm_clipping</c> (never null when <see cref="Renorm"/> is true).</summary>
    public RenormClipping? RenormClipping { get; }

    /// <summary>Keras <c>renorm_momentum</c>.</summary>
    public double RenormMomentum { get; }

    /// <summary>Keras <c>synchronized</c>; a no-op in a single process, kept for the configuration.</summary>
    public bool Synchronized { get; }

    /// <summary>Keras <c>beta_initializer</c>.</summary>
    public Initializer BetaInitializer { get; }

    /// <summary>Keras <c>gamma_initializer</c>.</summary>
    public Initializer GammaInitializer { get; }

    /// <summary>Keras <c>moving_mean_initializer</c>.</summary>
    public Initializer MovingMeanInitializer { get; }

    /// <summary>Keras <c>moving_variance_initializer</c>.</summary>
    public Initializer MovingVarianceInitializer { get; }

    /// <summary>Keras <c>beta_regularizer</c>, or null.</summary>
    public Regularizer? BetaRegularizer { get; }

    /// <summary>Keras <c>gamma_regularizer</c>, or null.</summary>
    public Regularizer? GammaRegularizer { get; }

    /// <summary>Keras <c>beta_constraint</c>, or null.</summary>
    public Constraint? BetaConstraint { get; }

    /// <summary>Keras <c>gamma_constraint</c>, or null.</summary>
    public Constraint? GammaConstraint { get; }

    /// <summary>
    /// Keras <c>trainable</c>. When false, every call runs in inference mode (even with <c>training: true</c>) and all
    /// weights are listed in <see cref="NonTrainableWeights"/>.
    /// </summary>
    public bool Trainable { get; set; }

    /// <summary>
    /// The most threads one call may use (not a Keras argument). -1, the default, means every core; 1 keeps every call on
    /// the calling thread. Inputs under 262,144 elements always run on the calling thread. The work is split by the
    /// shape alone and reductions are merged in a fixed order, so results are bitwise identical for any value.
    /// The extra threads are the library's own background helpers (at most one per other core, created on first use,
    /// allocation-free per call); a call made while another call is using them runs on its own thread.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is 0 or below -1.</exception>
    public int MaxDegreeOfParallelism
    {
        get => _maxDegreeOfParallelism;
        set
        {
            if (value == 0 || value < -1)
            {
                ThrowHelper.ThrowArgumentOutOfRange(nameof(value), value, "Expected -1 (every core) or a thread count >= 1.");
            }

            _maxDegreeOfParallelism = value;
        }
    }

    /// <summary>Whether the weights exist (after <see cref="Build(NdShape)"/> or the first call).</summary>
    public bool IsBuilt => _movingMean is not null;

    /// <summary>The number of channels C (the size of the input's <see cref="Axis"/> dimension); 0 before the layer is built.</summary>
    public int Channels => _movingMean?.Length ?? 0;

    /// <summary>The input rank the layer was built for; 0 before the layer is built.</summary>
    public int InputRank => _builtRank;

    /// <summary>Keras <c>gamma</c>, shape (C,): the live weight (writes change the layer), or null when <see cref="Scale"/> is false.</summary>
    /// <exception cref="InvalidOperationException">The layer is not built.</exception>
    public NdArray<T>? Gamma
    {
        get
        {
            EnsureBuilt();
            return _gamma;
        }
    }

    /// <summary>Keras <c>beta</c>, shape (C,): the live weight, or null when <see cref="Center"/> is false.</summary>
    /// <exception cref="InvalidOperationException">The layer is not built.</exception>
    public NdArray<T>? Beta
    {
        get
        {
            EnsureBuilt();
            return _beta;
        }
    }

    /// <summary>Keras <c>moving_mean</c>, shape (C,): the live weight.</summary>
    /// <exception cref="InvalidOperationException">The layer is not built.</exception>
    public NdArray<T> MovingMean
    {
        get
        {
            EnsureBuilt();
            return _movingMean!;
        }
    }

    /// <summary>Keras <c>moving_variance</c>, shape (C,): the live weight (the biased variance, as Keras keeps it).</summary>
    /// <exception cref="InvalidOperationException">The layer is not built.</exception>
    public NdArray<T> MovingVariance
    {
        get
        {
            EnsureBuilt();
            return _movingVariance!;
        }
    }

    /// <summary>Keras <c>moving_stddev</c> (renorm only): the moving standard deviation <c>sqrt(variance + epsilon)</c>
    /// from which <see cref="MovingVariance"/> is derived; null without renorm.</summary>
    /// <exception cref="InvalidOperationException">The layer is not built.</exception>
    public NdArray<T>? MovingStddev
    {
        get
        {
            EnsureBuilt();
            return _movingStddev;
        }
    }

    /// <summary>Keras <c>renorm_mean</c> (renorm only): the mean that training-mode outputs are corrected towards; null without renorm.</summary>
    /// <exception cref="InvalidOperationException">The layer is not built.</exception>
    public NdArray<T>? RenormMean
    {
        get
        {
            EnsureBuilt();
            return _renormMean;
        }
    }

    /// <summary>Keras <c>renorm_stddev</c> (renorm only): the standard deviation training-mode outputs are corrected towards; null without renorm.</summary>
    /// <exception cref="InvalidOperationException">The layer is not built.</exception>
    public NdArray<T>? RenormStddev
    {
        get
        {
            EnsureBuilt();
            return _renormStddev;
        }
    }

    /// <summary>Keras <c>weights</c>: the live weights in Keras order, gamma (if scale), beta (if center), moving_mean,
    /// moving_variance, then with renorm moving_stddev, renorm_mean, renorm_stddev.</summary>
    public IReadOnlyList<NdArray<T>> Weights
    {
        get
        {
            if (!IsBuilt)
            {
                return [];
            }

            var list = new List<NdArray<T>>(7);
            AddIfPresent(list, _gamma);
            AddIfPresent(list, _beta);
            list.AddRange(NonTrainableStatistics());
            return list;
        }
    }

    /// <summary>Keras <c>trainable_weights</c>: gamma and beta (those present) when <see cref="Trainable"/>, else none.</summary>
    public IReadOnlyList<NdArray<T>> TrainableWeights
    {
        get
        {
            if (!IsBuilt || !Trainable)
            {
                return [];
            }

            var list = new List<NdArray<T>>(2);
            AddIfPresent(list, _gamma);
            AddIfPresent(list, _beta);
            return list;
        }
    }

    /// <summary>Keras <c>non_trainable_weights</c>: moving_mean, moving_variance (and the renorm statistics), preceded by
    /// gamma and beta when not <see cref="Trainable"/>.</summary>
    public IReadOnlyList<NdArray<T>> NonTrainableWeights
    {
        get
        {
            if (!IsBuilt)
            {
                return [];
            }

            if (!Trainable)
            {
                return Weights;
            }

            return NonTrainableStatistics();
        }
    }

    /// <summary>
    /// Keras <c>losses</c>: the regularization terms, gamma's then beta's (only those with a regularizer), each
    /// <c>regularizer(weight)</c>, e.g. <c>l2 * sum(gamma^2)</c>. Add them to the model's loss.
    /// </summary>
    public IReadOnlyList<double> Losses
    {
        get
        {
            var losses = new List<double>(2);
            if (IsBuilt)
            {
                if (GammaRegularizer is not null && _gamma is not null)
                {
                    losses.Add(GammaRegularizer.Compute<T>(_gamma.ReadOnlySpan));
                }

                if (BetaRegularizer is not null && _beta is not null)
                {
                    losses.Add(BetaRegularizer.Compute<T>(_beta.ReadOnlySpan));
                }
            }

            return losses;
        }
    }

    /// <summary>The sum of <see cref="Losses"/> (0 when there are no regularizers).</summary>
    public double RegularizationLoss
    {
        get
        {
            double sum = 0;
            foreach (double loss in Losses)
            {
                sum += loss;
            }

            return sum;
        }
    }

    /// <summary>
    /// Creates the weights for inputs of <paramref name="inputShape"/> (Keras <c>build</c>). Only the rank and the channel
    /// dimension matter; later inputs must have the same rank and channel count. Building again with a compatible
    /// shape does nothing.
    /// </summary>
    /// <exception cref="ArgumentException">The rank is 0, <see cref="Axis"/> is outside [-rank, rank), the channel
    /// dimension is 0, or the layer was built for another rank or channel count.</exception>
    public void Build(NdShape inputShape)
    {
        int axis = ResolveAxis(inputShape.Dimensions, nameof(inputShape));
        int channels = inputShape.Dimensions[axis];
        if (IsBuilt)
        {
            return;
        }

        NdArray<T>? gamma = Scale ? CreateWeight(GammaInitializer, channels) : null;
        NdArray<T>? beta = Center ? CreateWeight(BetaInitializer, channels) : null;
        NdArray<T> movingMean = CreateWeight(MovingMeanInitializer, channels);
        NdArray<T> movingVariance = CreateWeight(MovingVarianceInitializer, channels);
        NdArray<T>? movingStddev = null;
        NdArray<T>? renormMean = null;
        NdArray<T>? renormStddev = null;
        if (Renorm)
        {
            // As Keras: the standard deviations start at the square root of (a fresh draw of) the variance initializer.
            movingStddev = CreateWeight(MovingVarianceInitializer, channels, Math.Sqrt);
            renormMean = CreateWeight(MovingMeanInitializer, channels);
            renormStddev = CreateWeight(MovingVarianceInitializer, channels, Math.Sqrt);
        }

        _gamma = gamma;
        _beta = beta;
        _movingMean = movingMean;
        _movingVariance = movingVariance;
        _movingStddev = movingStddev;
        _renormMean = renormMean;
        _renormStddev = renormStddev;
        _builtRank = inputShape.Rank;
        _context = new ForwardContext(channels, inputShape.Rank);
    }

    /// <summary>Normalizes <paramref name="inputs"/> into a new array of the same shape (Keras <c>call</c>).</summary>
    /// <param name="inputs">Input of rank &gt;= 1 whose <see cref="Axis"/> dimension is the channel count.</param>
    /// <param name="training">Use batch statistics and update the moving statistics (only when <see cref="Trainable"/>);
    /// otherwise use the moving statistics. Training mutates the layer.</param>
    /// <param name="mask">Optional Keras mask: true where a position counts towards the batch statistics. Its shape is
    /// the input's shape without the channel axis (for the last axis that is Keras' rank - 1 mask broadcast over the
    /// channels; for another axis the same rule, which Keras itself does not get right). Masked positions are still
    /// normalized. Only training-mode statistics use it.</param>
    /// <exception cref="ArgumentNullException"><paramref name="inputs"/> is null.</exception>
    /// <exception cref="ArgumentException">The rank or channel count does not match the layer, the mask's shape is wrong,
    /// or a training batch is empty.</exception>
    public NdArray<T> Call(NdArray<T> inputs, bool training = false, NdArray<bool>? mask = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var output = new NdArray<T>(inputs.Shape);
        CallCore(inputs.ReadOnlySpan, inputs.Shape.Dimensions, output.Span, inputs.Shape.Dimensions, training, mask, inputs, inPlace: false);
        return output;
    }

    /// <summary>Normalizes <paramref name="inputs"/> into <paramref name="destination"/>, allocating nothing.
    /// <paramref name="destination"/> may be <paramref name="inputs"/> itself (in place); see
    /// <see cref="Call(NdArray{T}, bool, NdArray{bool}?)"/> for <paramref name="mask"/>.</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The shapes differ, the arrays partially overlap, the rank or channel count does
    /// not match the layer, the mask's shape is wrong, or a training batch is empty.</exception>
    public void Call(NdArray<T> inputs, NdArray<T> destination, bool training = false, NdArray<bool>? mask = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(destination);
        CallCore(inputs.ReadOnlySpan, inputs.Shape.Dimensions, destination.Span, destination.Shape.Dimensions, training, mask,
            inputs, inPlace: ReferenceEquals(inputs.GetUnderlyingArray(), destination.GetUnderlyingArray()));
    }

    /// <summary>
    /// Normalizes a dense <see cref="ReadOnlyTensorSpan{T}"/> (for example a <see cref="Tensor{T}"/>) into a dense
    /// <see cref="TensorSpan{T}"/> of the same shape, without copying or allocating. In place is allowed.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor is not dense (strided views must be copied first), the shapes differ,
    /// they partially overlap, the rank or channel count does not match, or a training batch is empty.</exception>
    public void Call(in ReadOnlyTensorSpan<T> inputs, in TensorSpan<T> destination, bool training = false)
    {
        Span<int> inputDims = stackalloc int[inputs.Rank];
        Span<int> destinationDims = stackalloc int[destination.Rank];
        CheckDense(inputs.IsDense, inputs.Lengths, inputDims, nameof(inputs));
        CheckDense(destination.IsDense, destination.Lengths, destinationDims, nameof(destination));
        ReadOnlySpan<T> x = MemoryMarshal.CreateReadOnlySpan(in inputs.GetPinnableReference(), checked((int)inputs.FlattenedLength));
        Span<T> y = MemoryMarshal.CreateSpan(ref destination.GetPinnableReference(), checked((int)destination.FlattenedLength));
        CallCore(x, inputDims, y, destinationDims, training, null, null, inPlace: false);
    }

    /// <summary>
    /// Normalizes row-major <paramref name="inputs"/> of shape <paramref name="shape"/> into <paramref name="destination"/>
    /// (same length), without allocating. In place is allowed.
    /// </summary>
    /// <exception cref="ArgumentException">A length does not match the shape, the spans partially overlap, the rank or
    /// channel count does not match, or a training batch is empty.</exception>
    public void Call(ReadOnlySpan<T> inputs, NdShape shape, Span<T> destination, bool training = false)
    {
        if (inputs.Length != shape.Length)
        {
            ThrowHelper.ThrowArgument(nameof(inputs), $"Expected {shape.Length} elements for shape {shape}, got {inputs.Length}.");
        }

        CallCore(inputs, shape.Dimensions, destination, shape.Dimensions, training, null, null, inPlace: false);
    }

    /// <summary>Keras <c>get_weights()</c>: copies of the weights in Keras order (see <see cref="Weights"/>).</summary>
    public NdArray<T>[] GetWeights()
    {
        IReadOnlyList<NdArray<T>> weights = Weights;
        var copies = new NdArray<T>[weights.Count];
        for (int i = 0; i < copies.Length; i++)
        {
            copies[i] = weights[i].Clone();
        }

        return copies;
    }

    /// <summary>
    /// Keras <c>set_weights()</c>: copies <paramref name="weights"/> into the layer, in Keras order
    /// (gamma if scale, beta if center, moving_mean, moving_variance), each of shape (C,). Everything is validated
    /// before anything is written.
    /// </summary>
    /// <exception cref="InvalidOperationException">The layer is not built.</exception>
    /// <exception cref="ArgumentException">The count or a shape is wrong, or a moving variance is negative or NaN.</exception>
    public void SetWeights(IReadOnlyList<NdArray<T>> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        EnsureBuilt();
        IReadOnlyList<NdArray<T>> targets = Weights;
        CheckWeightCount(weights.Count, targets.Count);
        for (int i = 0; i < targets.Count; i++)
        {
            NdArray<T>? w = weights[i];
            if (w is null || w.Rank != 1 || w.Length != Channels)
            {
                ThrowHelper.ThrowArgument(nameof(weights),
                    $"Expected weight {i} ({WeightNames()[i]}) to have shape [{Channels}], got {(w is null ? "null" : w.Shape.ToString())}.");
            }
        }

        int statistics = (Scale ? 1 : 0) + (Center ? 1 : 0);
        CheckMovingVariance(weights[statistics + 1].ReadOnlySpan);
        for (int i = 0; i < targets.Count; i++)
        {
            weights[i].ReadOnlySpan.CopyTo(targets[i].Span);
        }
    }

    /// <summary>Keras <c>set_weights()</c> from plain arrays of length C; see <see cref="SetWeights(IReadOnlyList{NdArray{T}})"/>.</summary>
    /// <exception cref="InvalidOperationException">The layer is not built.</exception>
    /// <exception cref="ArgumentException">The count or a length is wrong, or a moving variance is negative or NaN.</exception>
    public void SetWeights(params T[][] weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        EnsureBuilt();
        var wrapped = new NdArray<T>[weights.Length];
        for (int i = 0; i < weights.Length; i++)
        {
            T[]? w = weights[i];
            if (w is null || w.Length != Channels)
            {
                CheckWeightCount(weights.Length, Weights.Count);
                ThrowHelper.ThrowArgument(nameof(weights),
                    $"Expected weight {i} ({WeightNames()[i]}) to have {Channels} elements, got {(w is null ? "null" : w.Length)}.");
            }

            wrapped[i] = new NdArray<T>(w, new NdShape(w.Length));
        }

        SetWeights(wrapped);
    }

    /// <summary>
    /// Applies <see cref="GammaConstraint"/> to gamma and <see cref="BetaConstraint"/> to beta, in place. Call it after
    /// each optimizer step, as Keras' optimizers do. Does nothing before the layer is built.
    /// </summary>
    public void ApplyConstraints()
    {
        if (_gamma is not null)
        {
            GammaConstraint?.Apply(_gamma.Span);
        }

        if (_beta is not null)
        {
            BetaConstraint?.Apply(_beta.Span);
        }
    }

    /// <summary>Keras <c>get_config()</c>: every constructor argument, so that <see cref="FromConfig(BatchNormalizationConfig)"/> rebuilds an equal layer.</summary>
    public BatchNormalizationConfig GetConfig() => new()
    {
        Name = Name,
        Trainable = Trainable,
        DType = DType,
        Axis = Axis,
        Momentum = Momentum,
        Epsilon = Epsilon,
        Center = Center,
        Scale = Scale,
        BetaInitializer = BetaInitializer,
        GammaInitializer = GammaInitializer,
        MovingMeanInitializer = MovingMeanInitializer,
        MovingVarianceInitializer = MovingVarianceInitializer,
        BetaRegularizer = BetaRegularizer,
        GammaRegularizer = GammaRegularizer,
        BetaConstraint = BetaConstraint,
        GammaConstraint = GammaConstraint,
        Synchronized = Synchronized,
        Renorm = Renorm,
        RenormClipping = RenormClipping,
        RenormMomentum = RenormMomentum,
    };

    /// <summary>Keras <c>from_config()</c>: a new, unbuilt layer with the configuration's arguments.</summary>
    /// <exception cref="ArgumentException">The configuration's dtype is not this layer's element type, or an argument is invalid.</exception>
    public static BatchNormalization<T> FromConfig(BatchNormalizationConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        string expected = typeof(T) == typeof(float) ? "float32" : "float64";
        if (config.DType is not null && config.DType != expected)
        {
            ThrowHelper.ThrowArgument(nameof(config), $"Expected dtype \"{expected}\" for BatchNormalization<{typeof(T).Name}>, got \"{config.DType}\".");
        }

        return new BatchNormalization<T>(
            config.Axis, config.Momentum, config.Epsilon, config.Center, config.Scale,
            config.BetaInitializer, config.GammaInitializer, config.MovingMeanInitializer, config.MovingVarianceInitializer,
            config.BetaRegularizer, config.GammaRegularizer, config.BetaConstraint, config.GammaConstraint,
            config.Trainable, config.Name, config.Renorm, config.RenormClipping, config.RenormMomentum, config.Synchronized);
    }

    /// <summary>
    /// Keras <c>from_config()</c> from JSON: a <c>get_config()</c> object or a model JSON layer entry, from Keras 3 or
    /// tf.keras 2 (see <see cref="Serialization.KerasConfigJson.Read"/>).
    /// </summary>
    /// <exception cref="FormatException">The JSON is malformed or invalid; the message names the key.</exception>
    /// <exception cref="ArgumentException">The configuration's dtype is not this layer's element type.</exception>
    public static BatchNormalization<T> FromConfig(string json) => FromConfig(BatchNormalizationConfig.FromJson(json));

    /// <summary>Formats the layer's name and key arguments.</summary>
    public override string ToString() =>
        $"BatchNormalization<{typeof(T).Name}>(name={Name}, axis={Axis}, momentum={Momentum}, epsilon={Epsilon}, center={Center}, scale={Scale}, channels={Channels})";

    private void CallCore(
        ReadOnlySpan<T> x, ReadOnlySpan<int> shape, Span<T> y, ReadOnlySpan<int> destinationShape, bool training,
        NdArray<bool>? mask, NdArray<T>? savedInput, bool inPlace)
    {
        // Validate everything before touching any state: a call that throws leaves the layer as it was. The messages are
        // built out of line (ThrowBadDestination, ThrowEmptyTrainingBatch), so that this method keeps a small frame.
        if (!shape.SequenceEqual(destinationShape))
        {
            ThrowBadDestination(shape, destinationShape);
        }

        if (x.Overlaps(y, out int elementOffset) && elementOffset != 0)
        {
            ThrowHelper.ThrowArgument("destination", "Expected the destination to be the inputs themselves (in place) or not to overlap them at all.");
        }

        int axis = ResolveAxis(shape, "inputs");
        ChannelLayout layout = ChannelLayout.FromShape(shape, axis);
        if (mask is not null)
        {
            CheckMask(mask, shape, axis);
        }

        bool useBatchStatistics = training && Trainable;
        if (useBatchStatistics && layout.CountPerChannel == 0)
        {
            ThrowEmptyTrainingBatch(shape);
        }

        if (!IsBuilt)
        {
            Build(new NdShape(shape));
        }

        // Each path is its own method, so that this one, which every call runs, keeps the frame of its checks.
        if (!useBatchStatistics)
        {
            InferenceCall(x, y, layout);
        }
        else
        {
            ForwardContext context = _context!;
            context.Begin(shape);
            if (mask is null && !Renorm && BatchNormKernels.IsSmallTraining<T>(layout, VectorWidths.Best))
            {
                SmallTrainingCall(x, y, layout, context);
            }
            else
            {
                TrainingCall(x, y, layout, mask, context);
            }
        }

        // Written only when it changes: a reference store costs a GC write barrier, and small calls repeat the same input.
        NdArray<T>? lastInput = inPlace ? null : savedInput;
        if (!ReferenceEquals(_lastInput, lastInput))
        {
            _lastInput = lastInput;
        }

        _lastMode = useBatchStatistics ? ForwardMode.Batch : ForwardMode.Moving;
    }

    /// <summary>
    /// An inference call's work after the checks: the affine map with the current weights' folded coefficients.
    /// Inference writes no shared scratch (concurrent calls are safe); what a backward pass needs is the input and the
    /// current weights and moving statistics, which inference does not change.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void InferenceCall(ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout)
    {
        if (layout.Length == 0)
        {
            return;
        }

        InferenceFold fold = CurrentInferenceFold();
        if (BatchNormKernels.IsSmallAffine<T>(layout, VectorWidths.Best))
        {
            BatchNormKernels.SmallAffine(x, y, layout, ref fold.CenterReference, ref fold.ScaleReference, ref fold.ShiftReference, VectorWidths.Best);
        }
        else
        {
            BatchNormKernels.Affine<T>(x, y, layout, fold.Center, fold.Scale, fold.Shift, VectorWidths.Best, _maxDegreeOfParallelism);
        }
    }

    /// <summary>
    /// A small unmasked batch's training call without renorm: the statistics, the steps and the map in one routine
    /// (<see cref="BatchNormKernels.SmallTrainingForward{T}"/>), with the same bits as <see cref="TrainingCall"/>. The
    /// context's mask was cleared by <see cref="ForwardContext.Begin"/>, so the backward sees none.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void SmallTrainingCall(ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout, ForwardContext context)
    {
        context.Denominator = BatchNormKernels.SmallTrainingForward(
            x, y, layout, context.Mean, context.Variance, GammaSpan, BetaSpan, _movingMean!.Span, _movingVariance!.Span, Momentum, Epsilon,
            context.EffectiveGamma, context.InverseStddev, context.Center, VectorWidths.Best);
    }

    /// <summary>
    /// A training call's work after the checks, for every batch <see cref="SmallTrainingCall"/> does not take: the batch
    /// statistics (masked or not), then renorm's corrections or the moving statistics' update, and the normalization.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void TrainingCall(ReadOnlySpan<T> x, Span<T> y, ChannelLayout layout, NdArray<bool>? mask, ForwardContext context)
    {
        Span<double> mean = context.Mean;
        Span<double> variance = context.Variance;
        ReadOnlySpan<T> weights = context.SetMask(mask, layout);
        context.Denominator = BatchNormKernels.BatchStatistics(
            x, layout, weights, mean, variance, BatchNormKernels.StatisticsWidth<T>(VectorWidths.Best, layout), _maxDegreeOfParallelism,
            endOnLastRows: BatchNormKernels.AffineWalksDown<T>(x, y, layout, VectorWidths.Best));
        if (Renorm)
        {
            // The effective affine weights after the corrections: gamma' = r * gamma, beta' = d * gamma + beta.
            ApplyRenorm(context);
            Span<double> effectiveGamma = context.EffectiveGamma;
            Span<double> effectiveBeta = context.EffectiveBeta;
            BatchNormKernels.EffectiveWeights(GammaSpan, BetaSpan, context.R, context.D, effectiveGamma, effectiveBeta);
            BatchNormKernels.Normalize<double, double, T>(
                x, y, layout, mean, variance, effectiveGamma, effectiveBeta, Epsilon, VectorWidths.Best, _maxDegreeOfParallelism);
            BatchNormKernels.InverseStddev(variance, Epsilon, context.InverseStddev);
            ChannelVector.Narrow<T>(mean, context.Center);
        }
        else
        {
            // gamma and beta as they are (r = 1 and d = 0 for good: the context starts that way and only renorm writes them).
            BatchNormKernels.TrainingNormalize(
                x, y, layout, mean, variance, GammaSpan, BetaSpan, _movingMean!.Span, _movingVariance!.Span, Momentum, Epsilon,
                context.EffectiveGamma, context.InverseStddev, context.Center, VectorWidths.Best, _maxDegreeOfParallelism);
        }
    }

    /// <summary>The exception for a destination whose shape is not the input's.</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadDestination(ReadOnlySpan<int> shape, ReadOnlySpan<int> destinationShape) =>
        ThrowHelper.ThrowArgument("destination",
            $"Expected the destination to have the input's shape {NdShape.Format(shape)}, got {NdShape.Format(destinationShape)}.");

    /// <summary>The exception for a training batch with no element in some channel (a zero-length dimension).</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowEmptyTrainingBatch(ReadOnlySpan<int> shape) =>
        ThrowHelper.ThrowArgument("inputs", $"Expected at least one element per channel in a training batch, got shape {NdShape.Format(shape)}.");

    /// <summary>
    /// Keras 3's Batch Renormalization step: corrections from the renorm statistics BEFORE their update,
    /// <c>r = clip(stddev / s, rmin, rmax)</c>, <c>d = clip((mean - renorm_mean) / s, -dmax, dmax)</c> with
    /// <c>stddev = sqrt(variance + epsilon)</c> and <c>s = max(renorm_stddev, sqrt(epsilon))</c>; then every moving
    /// statistic is updated and <c>moving_variance = max(moving_stddev^2 - epsilon, 0)</c>.
    /// </summary>
    private void ApplyRenorm(ForwardContext context)
    {
        Span<T> renormMean = _renormMean!.Span;
        Span<T> renormStddev = _renormStddev!.Span;
        Span<T> movingMean = _movingMean!.Span;
        Span<T> movingStddev = _movingStddev!.Span;
        Span<T> movingVariance = _movingVariance!.Span;
        double floor = Math.Sqrt(Epsilon);
        for (int c = 0; c < context.Mean.Length; c++)
        {
            double mean = context.Mean[c];
            double stddev = Math.Sqrt(context.Variance[c] + Epsilon);
            double oldRenormMean = double.CreateTruncating(renormMean[c]);
            double oldRenormStddev = double.CreateTruncating(renormStddev[c]);
            double s = Math.Max(oldRenormStddev, floor);
            context.R[c] = RenormClipping!.ClipR(stddev / s);
            context.D[c] = RenormClipping.ClipD((mean - oldRenormMean) / s);

            renormMean[c] = T.CreateTruncating((oldRenormMean * RenormMomentum) + (mean * (1.0 - RenormMomentum)));
            renormStddev[c] = T.CreateTruncating((oldRenormStddev * RenormMomentum) + (stddev * (1.0 - RenormMomentum)));
            movingMean[c] = T.CreateTruncating((double.CreateTruncating(movingMean[c]) * Momentum) + (mean * (1.0 - Momentum)));
            T newStddev = T.CreateTruncating((double.CreateTruncating(movingStddev[c]) * Momentum) + (stddev * (1.0 - Momentum)));
            movingStddev[c] = newStddev;
            double sd = double.CreateTruncating(newStddev);
            movingVariance[c] = T.CreateTruncating(Math.Max((sd * sd) - Epsilon, 0.0));
        }
    }

    private void CheckMask(NdArray<bool> mask, ReadOnlySpan<int> shape, int axis)
    {
        ReadOnlySpan<int> dims = mask.Shape.Dimensions;
        bool matches = dims.Length == shape.Length - 1;
        for (int i = 0, j = 0; matches && i < shape.Length; i++)
        {
            if (i == axis)
            {
                continue;
            }

            matches = dims[j++] == shape[i];
        }

        if (!matches)
        {
            int[] expected = new int[shape.Length - 1];
            for (int i = 0, j = 0; i < shape.Length; i++)
            {
                if (i != axis)
                {
                    expected[j++] = shape[i];
                }
            }

            ThrowHelper.ThrowArgument("mask",
                $"Expected a mask of shape {NdShape.Format(expected)} (the input's shape {NdShape.Format(shape)} without the channel axis {_axis}), got {mask.Shape}.");
        }
    }

    private ReadOnlySpan<T> GammaSpan => _gamma is null ? default : _gamma.ReadOnlySpan;

    private ReadOnlySpan<T> BetaSpan => _beta is null ? default : _beta.ReadOnlySpan;

    /// <summary>Checks the axis against the shape's rank and, once built, the rank and channel count; returns the axis in [0, rank).</summary>
    private int ResolveAxis(ReadOnlySpan<int> shape, string paramName)
    {
        // The checks, without the messages: those are built by ThrowBadShape, out of line, so that this method (called on
        // every forward and backward) keeps a small frame.
        int rank = shape.Length;
        int axis = _axis < 0 ? _axis + rank : _axis;
        if ((uint)axis >= (uint)rank || (IsBuilt ? rank != _builtRank || shape[axis] != Channels : shape[axis] == 0))
        {
            ThrowBadShape(shape, paramName);
        }

        return axis;
    }

    /// <summary>The exception <see cref="ResolveAxis"/> found a reason for: which check failed, and its message.</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowBadShape(ReadOnlySpan<int> shape, string paramName)
    {
        int rank = shape.Length;
        if (rank == 0)
        {
            ThrowHelper.ThrowArgument(paramName, "Expected an input of rank >= 1, got a rank-0 shape [].");
        }

        if (_axis < -rank || _axis >= rank)
        {
            ThrowHelper.ThrowArgument(paramName,
                $"Axis {_axis} is out of range for an input of rank {rank} (shape {NdShape.Format(shape)}): expected -{rank} <= axis < {rank}.");
        }

        int axis = _axis < 0 ? _axis + rank : _axis;
        int channels = shape[axis];
        if (IsBuilt)
        {
            if (rank != _builtRank)
            {
                ThrowHelper.ThrowArgument(paramName,
                    $"Expected an input of rank {_builtRank} (the layer was built for it), got rank {rank} (shape {NdShape.Format(shape)}).");
            }

            if (channels != Channels)
            {
                ThrowHelper.ThrowArgument(paramName,
                    $"Expected {Channels} channels on axis {_axis} (the layer was built for them), got {channels} (shape {NdShape.Format(shape)}).");
            }
        }
        else if (channels == 0)
        {
            ThrowHelper.ThrowArgument(paramName, $"Expected a channel dimension (axis {_axis}) of at least 1, got shape {NdShape.Format(shape)}.");
        }

        throw new UnreachableException($"ResolveAxis found no fault in shape {NdShape.Format(shape)}.");
    }

    private static void CheckDense(bool isDense, ReadOnlySpan<nint> lengths, Span<int> dims, string paramName)
    {
        if (!isDense)
        {
            ThrowHelper.ThrowArgument(paramName, "Expected a dense (contiguous, row-major) tensor; copy a strided view first.");
        }

        for (int i = 0; i < dims.Length; i++)
        {
            dims[i] = checked((int)lengths[i]);
        }
    }

    private void EnsureBuilt()
    {
        if (!IsBuilt)
        {
            ThrowHelper.ThrowInvalidOperation("The layer is not built: call Build(inputShape) or call the layer on an input first.");
        }
    }

    private void CheckWeightCount(int actual, int expected)
    {
        if (actual != expected)
        {
            ThrowHelper.ThrowArgument("weights",
                $"Expected {expected} weights [{string.Join(", ", WeightNames())}], got {actual}.");
        }
    }

    private static void CheckMovingVariance(ReadOnlySpan<T> variance)
    {
        foreach (T v in variance)
        {
            if (!(v >= T.Zero))
            {
                ThrowHelper.ThrowArgument("weights", $"Expected a moving_variance >= 0 in every channel, got {v}.");
            }
        }
    }

    private List<string> WeightNames()
    {
        var names = new List<string>(7);
        if (Scale)
        {
            names.Add("gamma");
        }

        if (Center)
        {
            names.Add("beta");
        }

        names.Add("moving_mean");
        names.Add("moving_variance");
        if (Renorm)
        {
            names.Add("moving_stddev");
            names.Add("renorm_mean");
            names.Add("renorm_stddev");
        }

        return names;
    }

    private static NdArray<T> CreateWeight(Initializer initializer, int channels, Func<double, double>? transform = null)
    {
        var values = new double[channels];
        initializer.Initialize(values);
        var weight = new NdArray<T>(new NdShape(channels));
        for (int c = 0; c < channels; c++)
        {
            weight.Span[c] = T.CreateTruncating(transform is null ? values[c] : transform(values[c]));
        }

        return weight;
    }

    private List<NdArray<T>> NonTrainableStatistics()
    {
        var list = new List<NdArray<T>>(5) { _movingMean!, _movingVariance! };
        if (Renorm)
        {
            list.Add(_movingStddev!);
            list.Add(_renormMean!);
            list.Add(_renormStddev!);
        }

        return list;
    }

    private static void AddIfPresent(List<NdArray<T>> list, NdArray<T>? weight)
    {
        if (weight is not null)
        {
            list.Add(weight);
        }
    }
}

/// <summary>
/// The Keras 3 <c>BatchNormalization</c> layer for <see cref="float"/> data (Keras dtype <c>"float32"</c>), the usual case.
/// See <see cref="BatchNormalization{T}"/> for the maths and conventions.
/// </summary>
public sealed class BatchNormalization : BatchNormalization<float>
{
    /// <summary>Creates the layer; see <see cref="BatchNormalization{T}(int, double, double, bool, bool, Initializer?, Initializer?, Initializer?, Initializer?, Regularizer?, Regularizer?, Constraint?, Constraint?, bool, string?, bool, RenormClipping?, double, bool)"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="momentum"/> or <paramref name="renormMomentum"/> is NaN
    /// or outside [0, 1], or <paramref name="epsilon"/> is NaN, infinite or &lt;= 0.</exception>
    public BatchNormalization(
        int axis = -1,
        double momentum = 0.99,
        double epsilon = 1e-3,
        bool center = true,
        bool scale = true,
        Initializer? betaInitializer = null,
        Initializer? gammaInitializer = null,
        Initializer? movingMeanInitializer = null,
        Initializer? movingVarianceInitializer = null,
        Regularizer? betaRegularizer = null,
        Regularizer? gammaRegularizer = null,
        Constraint? betaConstraint = null,
        Constraint? gammaConstraint = null,
        bool trainable = true,
        string? name = null,
        bool renorm = false,
        RenormClipping? renormClipping = null,
        double renormMomentum = 0.99,
        bool synchronized = false)
        : base(axis, momentum, epsilon, center, scale, betaInitializer, gammaInitializer, movingMeanInitializer,
            movingVarianceInitializer, betaRegularizer, gammaRegularizer, betaConstraint, gammaConstraint, trainable, name,
            renorm, renormClipping, renormMomentum, synchronized)
    {
    }
}
