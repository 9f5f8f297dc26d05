//! The TCK catches defects: a reference backend passes every check, at a 1 ms and at a
//! 1 s TTL granularity, and each deliberately broken variant of it fails the check, and
//! the step of that check, named in [`CASES`]. Together the cases make every assertion
//! of the checks fail at least once (the few that cannot be made to are listed in the
//! README), so none of them is a check that cannot fail.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use cache_api::{async_trait, validate_key, Bytes, Cache, CacheError, Limits};
use cache_tck::{check_named, run_check, CHECKS};
use futures::future::join_all;

/// An operation, for defects that touch one of them only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    SetNone,
    SetTtl,
    SetZero,
    Delete,
    Exists,
    GetMany,
    SetMany,
    DeleteMany,
    Add,
}

/// One way of being wrong. The reference backend keeps the contract except for the
/// one defect it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    // TTLs.
    TtlIgnored,
    TtlThreeTimesTooLong,
    TtlsTooShort(u32),
    NothingStoredBelow(Duration),
    NoneBecomesTtl(Duration),
    FirstTtlKeptOnOverwrite,
    OverwriteDropsTtl,
    SetWithoutTtlKeepsOldTtl,
    ZeroTtlStoredForever,
    ZeroTtlIgnoredOnExistingKey,
    SubMillisecondTtlTruncatedToForever,
    SubGranularityTtlStoresNothing,
    LongTtlReadAsUnixTime,
    MaxTtlIsABackendError,
    MaxTtlAcceptedButNothingStored,
    MaxTtlRefusedAfterRemovingOld,
    SameValueSetSkipped,
    TtlsOverTwoSecondsIgnored,
    TtlsRoundedDownToWholeSeconds,
    ExpiresLate(Duration),
    TtlsCappedAt(Duration),
    TtlMillisecondsKeptIn32Bits,
    ReadsRestartTheTtl,
    LongTtlMisreadJustPastThirtyDays,
    HugeTtlsAreBackendErrors,
    // Reads and misses.
    MissReturnedAsEmptyValue,
    MissReturnedAsError,
    ValuesTruncated,
    ValuesDecodedAsUtf8,
    EmptyValueReadAsMiss,
    EmptyValueOverwriteIgnored,
    CompressedLookingValuesStripped,
    TrailingSpacesOfValuesStripped,
    LeadingFeByteTakenForATag,
    GetManyCutsValuesAt(usize),
    LongKeysShrinkTheValueLimit,
    // Limits and sizes.
    DeclaresTinyMaxValueSize,
    DeclaresCoarseGranularity,
    DeclaresEndlessGranularity,
    DeclaresHugeMaxValueSize,
    LargestValueRejected,
    LargeValuesLoseLastByte,
    MidSizedValuesLoseLastByte,
    OversizedValueAccepted,
    ValueTooLargeNamesWrongLimit,
    SetManyAcceptsOversized,
    OversizedSetRemovesOldValue,
    OversizedSetEvictsOthers,
    SetManyWritesBeforeCheckingSizes,
    WritesLostAfterRefusedValue,
    // Delete and exists.
    DeleteDoesNothing,
    DeleteAlwaysTrue,
    DeleteReportsFalse,
    DeleteOfNeverWrittenKeyReportsTrue,
    DeleteOfEmptyValueReportsFalse,
    ExpiredDeleteReportsTrue,
    ExistsAlwaysFalse,
    ExistsAlwaysTrue,
    ExistsFalseForEmptyValue,
    ExistsSeesDeletedEntries,
    ExistsIgnoresExpiry,
    // Keys.
    EmptyKeyAcceptedBy(Op),
    LoneEmptyKeyAcceptedByBatches,
    NonAsciiKeysLossy,
    RareControlCharactersStripped,
    SetManyWritesBeforeValidating,
    DeleteManyDeletesBeforeValidating,
    KeysRejectedOver(usize),
    KeysWithWhitespaceOrControlsRejected,
    KeysTruncatedTo(usize),
    KeysCaseInsensitive,
    KeysCutAtCarriageReturn,
    LongKeysCollideByLength,
    LongKeysKeptByTheirEnds,
    EncodedSlashDecoded,
    BlankKeysRejected,
    KeysHashedTo24Bits,
    /// Each character of a key kept in 16 bits (UCS-2 cut short): a character past
    /// U+FFFF becomes the one 65,536 code points before it.
    CharactersKeptIn16Bits,
    /// Entries are numbered in order of first use, in 16 bits: the 65,537th key takes
    /// the first one's entry.
    SlotIdsWrapAt16Bits,
    /// Past this many entries, writes of new keys are answered `Ok` and dropped.
    NewKeysDroppedPast(usize),
    DeleteMissesKeysOver(usize),
    DeleteLeavesKeysOver(usize),
    GetManyTruncatesKeysTo(usize),
    GetDoesNotEncodeWhitespaceKeys,
    DeleteCutsKeysAtCarriageReturn,
    KeysInjectDelete,
    // Bulk operations.
    GetManySkipsMisses,
    GetManyCapsAt100Answers,
    GetManyMisordersLongBatches,
    GetManyDeduplicates,
    GetManyReadsEmptyAsMiss,
    GetManyStaleAfterOverwrite,
    GetManySeesDeleted,
    GetManyIgnoresExpiry,
    BatchEntriesIgnoreLaterSet,
    EmptyGetManyIsAnError,
    EmptyGetManyAnswersOneMiss,
    EmptySetManyIsAnError,
    EmptySetManyWithTtlIsAnError,
    EmptyDeleteManyIsAnError,
    EmptyDeleteManyCountsOne,
    SetManyStoresOnlyLastEntry,
    SetManyFirstValueWins,
    SetManySkipsEmptyValues,
    SetManyIgnoresTtl,
    SetManyTtlOnlyOnFirstEntry,
    SetManyAppliesTtlToEveryLiveEntry,
    SetManyZeroTtlIgnored,
    SetManyNoneKeepsOldTtl,
    SetManyMaxTtlWritesFirstThenRefuses,
    SetManyMaxTtlDropsLastEntry,
    SetManyMaxTtlIsABackendError,
    DeleteManyCountsEveryKeyNamed,
    DeleteManyLeavesLastLiveKey,
    DeleteManyRemovesByPrefix,
    DeleteManyCountsExpired,
    SetManyStoresFirstEight,
    DeleteManyStopsAtSixteen,
    // Clear.
    ClearUnsupported,
    ClearDoesNothing,
    ClearStopsAfter(usize),
    ClearSkipsGlobLikeKeys,
    ClearSkipsBatchWrites,
    ClearSkipsLongKeys,
    ClearLeavesGetManyAnswers,
    ClearLeavesExistsTrue,
    ClearLeavesDeleteManyCounting,
    WritesLostAfterClear,
    SetManyLostAfterClear,
    ClearFailsOnEmptyCache,
    ClearFailsWhenAlreadyClear,
    MissesReadAsEmptyAfterClear,
    ClearSkipsNonAsciiKeys,
    ClearSkipsAddedEntries,
    // Add.
    AddUnsupported,
    AddReturnsTrueWithoutStoring,
    AddStoresEmptyValuesAsNothing,
    AddIgnoresTtl,
    AddOverwrites,
    AddAlwaysTrue,
    AddCountsEmptyValueAsAbsent,
    AddExtendsTtlOfPresent,
    AddShortensTtlOfPresent,
    AddKeepsExpiredEntry,
    AddRefusedAfterDelete,
    AddZeroTtlStores,
    AddZeroTtlRemovesPresent,
    AddZeroTtlSkipsValidation,
    AddChecksPresenceBeforeSize,
    AddOversizedAccepted,
    AddMaxTtlIsABackendError,
    AddMaxTtlAcceptedButNothingStored,
    AddGetThenSet,
    AddAlwaysFalse,
    AddRefusesWithoutTtl,
    AddTrueWhenItsTtlIsShorter,
    AddOverwritesWhenItsTtlIsShorter,
    AddTrueWhenItsTtlIsLonger,
    AddDropsEntryWhenItsTtlIsLonger,
    AddResurrectsDeletedValue,
    AddZeroTtlStoresButReportsFalse,
    AddZeroTtlReportsTrueOnPresent,
    AddZeroTtlSkipsSizeCheck,
    AddOversizedStoresThenRefuses,
    AddOversizedRemovesOld,
    AddMaxTtlRefusedAfterStoring,
    RefusedAddWithoutTtlPersists,
    // Concurrency.
    GetAnswersTheLatestWriteOfAnyKey,
    LostConcurrentWrites,
    DropsWritesWhileAnotherIsInFlight,
    OverwriteIgnoredWhileOthersInFlight,
    ConcurrentWritesTorn,
    WritesStayOnTheirThread,
    ReadsCachedPerThread,
    PanicsOffTheCallerThread,
    // Batches of more than 16 entries, which a backend may send in parts.
    GetManyLosesEarlierDuplicatesInLongBatches,
    SetManyFirstValueWinsInLongBatches,
    SetManyTtlOnlyOnFirstSixteen,
    GetManyIgnoresExpiryInLongBatches,
    DeleteManyCountsExpiredInLongBatches,
    LongBatchesUnchecked(Op),
    LongBatchesValidatedWhileWriting(Op),
    SetManyChecksSizesWhileWritingLongBatches,
    // Keys that one operation encodes and another does not.
    SetManyRefusesKeysOver(usize),
    ExistsFalseForKeysOver(usize),
    GetManyMissesWhitespaceKeys,
    DeleteOfNonAsciiKeyReportsFalse,
    DeleteManySkipsNonAsciiKeys,
    DeleteManyLeavesWhitespaceKeys,
    SetManyDropsNonAsciiKeys,
    AddTruncatesKeysTo(usize),
    AddFalseForKeysOver(usize),
    KeysNeedingEncodingStoredAsHex,
    // TTLs over entries, and rounding.
    ZeroTtlIgnoredWithoutPreviousTtl,
    TtlIgnoredOverEntryWithoutOne,
    TtlCountedFromFirstWrite,
    TtlsRoundedToNearestSecond,
    SetManyTtlsRoundedDown,
    AddTtlsRoundedDown,
    AddWithoutTtlGetsTtl(Duration),
    // Values, limits and what is declared.
    SentinelValuesReadAsMiss,
    AddLargestValueRejected,
    DeclaresNoAddButAdds,
    DeclaresNoAddButStoresThenRefuses,
    DeclaresNoClearButIgnoresIt,
    DeclaresNoClearButClearsThenRefuses,
    // Expiry of entries of other shapes, and of longer TTLs.
    EmptyValuesNeverExpire,
    LargeValuesNeverExpire,
    LongKeysNeverExpire,
    NonAsciiKeysNeverExpire,
    TtlsOfThreeSecondsIgnored,
    TtlsRoundedUpToTheMinute,
    ReadsBesidesGetExpireLate,
    // What a zero TTL or a clear leaves behind.
    ZeroTtlLeavesDeleteTrue,
    ZeroTtlLeavesExistsTrue,
    ZeroTtlLeavesAddFalse,
    ClearedKeysDeleteTrue,
    ClearedKeysRefuseAdd,
    ClearKeepsEntriesOfShortTtls,
    // Values, keys and add, on shapes the other checks leave out.
    ValuesOfHundredsOfKiBFlipTheirMiddleByte,
    LoneNulReadAsEmpty,
    ValueTooLargeNamesLimitPlusOne,
    OversizedUnderLongKeyIsABackendError,
    ZeroWidthCharactersStripped,
    FormatCharactersStripped,
    NoncharactersStripped,
    PrivateUseCharactersReplaced,
    LongKeysLowercased,
    CrLfInKeysFolded,
    ValuesOfChunkMultiplesLoseLastByte,
    PlusNumbersCanonical,
    TtlsRoundedUpToATenthOfASecond,
    LongTtlsRoundedDownToWholeSeconds,
    TtlsWithASubMillisecondPartRefused,
    AddReadsLeftoverDeadline,
    ClearSparesLongLivedEntries,
    SetManySkipsKeysOver(usize),
    ReadCopiesKeptWhileReadsAreUnderWay,
    NonAsciiWhitespaceTrimmed,
    AddOfTheSameValueStores,
    // Keys an encoding merges, and keys taken as patterns.
    LongKeysKeptAsHeadLengthAndSum,
    ColonsStoredAsSlashes,
    ControlsEscapedButNotBackslash,
    C1ControlsStripped,
    FullwidthFoldedToAscii,
    KeysDeletedAsGlobs(Op),
    LongKeysSlicedAtByte200,
    // Batches, add and clear, on shapes the other checks leave out.
    BatchesCutAfter512(Op),
    DeleteManyDoesNotCountEmptyValues,
    SetManyZeroTtlLeavesTombstoneFor(Op),
    AddSeesBatchEntriesAsAbsent,
    AddLeaksAClaimWhenRefused,
    ClearKeepsKeysWithoutColon,
    // Values and TTLs, on shapes the other checks leave out.
    FirstRunOf256EqualBytesLosesAByte,
    ValuesOf4To12KiBFlipTheirMiddleByte,
    LeadingFfFeStripped,
    FarOversizedIsABackendError,
    BriefTtlsNeverExpire,
    TtlsOverThreeSecondsRoundedUpToFiveSeconds,
    SetNoneOverExpiredKeepsOldExpiry,
    SetNoneOverExpiredReusesOldTtl,
    AddNoneOverExpiredReusesOldTtl,
}

use Defect::*;

/// Batches longer than this are where the defects of long batches show.
const SHORT_BATCH: usize = 16;

/// The reference's TTL granularity for a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// 1 ms, like Redis.
    Fine,
    /// 1 s, ticking on its own, like memcached.
    Coarse,
}

use Clock::*;

/// A broken backend, the check that must fail on it, and text the failure must hold
/// (every fragment, in its `step: expected …, got …` form): the step that catches it.
struct Case {
    defect: Defect,
    clock: Clock,
    check: &'static str,
    step: &'static [&'static str],
}

const fn case(defect: Defect, check: &'static str, step: &'static [&'static str]) -> Case {
    Case {
        defect,
        clock: Fine,
        check,
        step,
    }
}

const fn coarse(defect: Defect, check: &'static str, step: &'static [&'static str]) -> Case {
    Case {
        defect,
        clock: Coarse,
        check,
        step,
    }
}

const SECOND: Duration = Duration::from_secs(1);

/// Every step of every check, and the defect that makes it fail.
const CASES: &[Case] = &[
    // Values and TTLs, on shapes the other checks leave out.
    case(
        FirstRunOf256EqualBytesLosesAByte,
        "test_values_of_every_size_up_to_the_limit_round_trip",
        &["after set of 4096 bytes all 0x00"],
    ),
    case(
        ValuesOf4To12KiBFlipTheirMiddleByte,
        "test_values_of_every_size_up_to_the_limit_round_trip",
        &["after set of 4200 bytes"],
    ),
    case(
        LeadingFfFeStripped,
        "test_binary_values_round_trip",
        &["get(\"tck:binary-utf16le-bom\")"],
    ),
    case(
        FarOversizedIsABackendError,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &[
            "set of 2097152 bytes, 2 times the limit 1048576",
            "got Err(Backend",
        ],
    ),
    case(
        BriefTtlsNeverExpire,
        "test_entries_without_ttl_outlive_every_ttl_of_the_run",
        &[
            "get(\"tck:brief-5ms\")",
            "after set with a 5ms ttl",
            "expected None",
        ],
    ),
    case(
        TtlsOverThreeSecondsRoundedUpToFiveSeconds,
        "test_entries_without_ttl_outlive_every_ttl_of_the_run",
        &["get(\"tck:four-and-a-half\")", "expected None"],
    ),
    case(
        SetNoneOverExpiredKeepsOldExpiry,
        "test_entries_without_ttl_outlive_every_ttl_of_the_run",
        &["get(\"tck:none-over-expired-set\") right after it was written by set without ttl"],
    ),
    case(
        SetNoneOverExpiredReusesOldTtl,
        "test_entries_without_ttl_outlive_every_ttl_of_the_run",
        &["get(\"tck:none-over-expired-set\") 6.101s after it was written by set without ttl"],
    ),
    case(
        AddNoneOverExpiredReusesOldTtl,
        "test_entries_without_ttl_outlive_every_ttl_of_the_run",
        &["get(\"tck:none-over-expired-add\") 6.101s after it was written by add without ttl"],
    ),
    // Keys an encoding merges, and keys taken as patterns.
    case(
        LongKeysKeptAsHeadLengthAndSum,
        "test_distinct_keys_never_collide",
        &["after setting long keys alike up to their last bytes"],
    ),
    case(
        ColonsStoredAsSlashes,
        "test_distinct_keys_never_collide",
        &["after setting keys alike but for a separator"],
    ),
    case(
        ControlsEscapedButNotBackslash,
        "test_distinct_keys_never_collide",
        &["after setting keys holding a control character or its escape text"],
    ),
    case(
        C1ControlsStripped,
        "test_distinct_keys_never_collide",
        &["after setting keys alike but for a C1 control or a line separator"],
    ),
    case(
        FullwidthFoldedToAscii,
        "test_distinct_keys_never_collide",
        &["after setting keys alike but for a compatibility form"],
    ),
    case(
        LongKeysSlicedAtByte200,
        "test_long_keys_round_trip",
        &[
            "1 ASCII bytes, then 2-byte characters",
            "expected an answer, got a panic: ",
            "byte index 200 is not a char boundary",
        ],
    ),
    case(
        KeysDeletedAsGlobs(Op::Delete),
        "test_keys_cannot_inject_protocol_commands",
        &["get(\"tck:glob-victim:1\") after delete(\"tck:glob-victim:*\")"],
    ),
    case(
        KeysDeletedAsGlobs(Op::DeleteMany),
        "test_keys_cannot_inject_protocol_commands",
        &["get(\"tck:glob-victim:1\") after delete_many of keys holding '?' and '[0-9]'"],
    ),
    // Batches, add and clear, on shapes the other checks leave out.
    case(
        BatchesCutAfter512(Op::SetMany),
        "test_set_many_stores_every_entry_with_the_ttl",
        &["get(\"tck:sm-huge-1999\") after set_many of 2000 entries"],
    ),
    case(
        BatchesCutAfter512(Op::GetMany),
        "test_set_many_stores_every_entry_with_the_ttl",
        &["get_many of 2000 keys after set_many of them, answer 512"],
    ),
    case(
        BatchesCutAfter512(Op::DeleteMany),
        "test_set_many_stores_every_entry_with_the_ttl",
        &["delete_many of 2000 live keys", "expected Ok(2000)"],
    ),
    case(
        DeleteManyDoesNotCountEmptyValues,
        "test_delete_many_counts_removed_entries",
        &["of an empty value and a miss", "expected Ok(1), got Ok(0)"],
    ),
    case(
        SetManyZeroTtlLeavesTombstoneFor(Op::Exists),
        "test_set_many_stores_every_entry_with_the_ttl",
        &["exists(\"tck:sm-empty\") after set_many with a zero ttl"],
    ),
    case(
        SetManyZeroTtlLeavesTombstoneFor(Op::Delete),
        "test_set_many_stores_every_entry_with_the_ttl",
        &["delete(\"tck:sm-empty\") after set_many with a zero ttl"],
    ),
    case(
        SetManyZeroTtlLeavesTombstoneFor(Op::DeleteMany),
        "test_set_many_stores_every_entry_with_the_ttl",
        &["delete_many([\"tck:sm-dup\"]) after set_many with a zero ttl"],
    ),
    case(
        AddSeesBatchEntriesAsAbsent,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &["of a key written by set_many"],
    ),
    case(
        AddLeaksAClaimWhenRefused,
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &["add(\"tck:add-too-large\", \"fits\", 3600s) of an absent key"],
    ),
    case(
        ClearKeepsKeysWithoutColon,
        "test_clear_removes_entries_from_every_write_path",
        &["get(\"with space\") after clear"],
    ),
    // Values, keys and add, on shapes the other checks leave out.
    case(
        ValuesOfHundredsOfKiBFlipTheirMiddleByte,
        "test_values_of_every_size_up_to_the_limit_round_trip",
        &["after set of 200000 bytes"],
    ),
    case(
        LoneNulReadAsEmpty,
        "test_binary_values_round_trip",
        &["get(\"tck:binary-lone-nul\")"],
    ),
    case(
        ValueTooLargeNamesLimitPlusOne,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &["set of 1049576 bytes under a key of"],
    ),
    case(
        OversizedUnderLongKeyIsABackendError,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &["set of 1049576 bytes under a key of", "got Err(Backend"],
    ),
    case(
        ZeroWidthCharactersStripped,
        "test_distinct_keys_never_collide",
        &["after setting many alike keys"],
    ),
    case(
        NonAsciiWhitespaceTrimmed,
        "test_distinct_keys_never_collide",
        &["after setting many alike keys"],
    ),
    case(
        AddOfTheSameValueStores,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &["of a key holding the same value"],
    ),
    // What a zero TTL or a clear leaves behind.
    case(
        ZeroTtlLeavesDeleteTrue,
        "test_zero_ttl_stores_nothing_and_removes_previous_value",
        &["delete(\"tck:zero-old\")", "expected Ok(false)"],
    ),
    case(
        ZeroTtlLeavesExistsTrue,
        "test_zero_ttl_stores_nothing_and_removes_previous_value",
        &["exists(\"tck:zero-old\")", "expected Ok(false)"],
    ),
    case(
        ZeroTtlLeavesAddFalse,
        "test_zero_ttl_stores_nothing_and_removes_previous_value",
        &["add(\"tck:zero-old\"", "of an absent key"],
    ),
    case(
        ClearedKeysDeleteTrue,
        "test_clear_removes_entries_from_every_write_path",
        &[
            "delete(\"tck:clear-set-none\") after clear",
            "expected Ok(false)",
        ],
    ),
    case(
        ClearedKeysRefuseAdd,
        "test_clear_removes_entries_from_every_write_path",
        &["add(\"tck:clear-set-ttl\"", "of an absent key"],
    ),
    case(
        ClearKeepsEntriesOfShortTtls,
        "test_clear_removes_every_entry",
        &["get(\"tck:clear-1\") after clear"],
    ),
    // Expiry of entries of other shapes, and of longer TTLs.
    case(
        EmptyValuesNeverExpire,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["(empty value)", "expected None"],
    ),
    case(
        LargeValuesNeverExpire,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["(value over 64 KiB)", "expected None"],
    ),
    case(
        LongKeysNeverExpire,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["(key over 250 bytes)", "expected None"],
    ),
    case(
        NonAsciiKeysNeverExpire,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["(non-ascii key)", "expected None"],
    ),
    case(
        TtlsOfThreeSecondsIgnored,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["get(\"tck:seconds-three\")", "with a 3s ttl"],
    ),
    case(
        TtlsRoundedUpToTheMinute,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["get(\"tck:seconds-three\")", "with a 3s ttl"],
    ),
    case(
        ReadsBesidesGetExpireLate,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["exists(\"tck:seconds-expiring-exists\")", "with a 2.5s ttl"],
    ),
    // Long batches.
    case(
        GetManyLosesEarlierDuplicatesInLongBatches,
        "test_get_many_answers_duplicate_keys_at_each_position",
        &["of 40 keys naming \"tck:dup\" first and last", "answer 0"],
    ),
    case(
        SetManyFirstValueWinsInLongBatches,
        "test_set_many_stores_every_entry_with_the_ttl",
        &["get(\"tck:sm-many-9\") after set_many of 21 entries, the tenth named again last"],
    ),
    case(
        SetManyTtlOnlyOnFirstSixteen,
        "test_set_many_stores_every_entry_with_the_ttl",
        &["get(\"tck:sm-17\")", "ttl (20 entries)"],
    ),
    case(
        GetManyIgnoresExpiryInLongBatches,
        "test_get_many_agrees_with_get_after_overwrite_delete_and_expiry",
        &[
            "20 keys never written first",
            "answer 22 (\"tck:gm-expired\")",
        ],
    ),
    case(
        DeleteManyCountsExpiredInLongBatches,
        "test_delete_many_does_not_count_expired_entries",
        &[
            "delete_many of 20 keys never written",
            "expected Ok(1), got Ok(2)",
        ],
    ),
    case(
        LongBatchesUnchecked(Op::GetMany),
        "test_empty_key_is_invalid_on_every_operation",
        &["get_many of 20 keys, then \"\""],
    ),
    case(
        LongBatchesUnchecked(Op::SetMany),
        "test_empty_key_is_invalid_on_every_operation",
        &["set_many of 20 entries, then one under \"\""],
    ),
    case(
        LongBatchesUnchecked(Op::DeleteMany),
        "test_empty_key_is_invalid_on_every_operation",
        &["delete_many of \"tck:kept\" and 19 keys, then \"\""],
    ),
    case(
        LongBatchesValidatedWhileWriting(Op::SetMany),
        "test_empty_key_is_invalid_on_every_operation",
        &["after a refused set_many of 20 entries, then one under \"\""],
    ),
    case(
        LongBatchesValidatedWhileWriting(Op::DeleteMany),
        "test_empty_key_is_invalid_on_every_operation",
        &["after a refused delete_many of 20 keys, then \"\""],
    ),
    case(
        SetManyChecksSizesWhileWritingLongBatches,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &["after a refused set_many of 20 small values and an oversized one"],
    ),
    // Every operation on long and special keys.
    case(
        SetManyRefusesKeysOver(250),
        "test_long_keys_round_trip",
        &["set_many of 3 long keys"],
    ),
    case(
        ExistsFalseForKeysOver(250),
        "test_long_keys_round_trip",
        &[
            "exists(",
            "after set and set_many of long keys",
            "expected Ok(true)",
        ],
    ),
    case(
        GetManyMissesWhitespaceKeys,
        "test_keys_with_spaces_control_characters_and_non_ascii_round_trip",
        &[
            "get_many([",
            "after set and set_many of special keys, answer 0",
        ],
    ),
    case(
        DeleteOfNonAsciiKeyReportsFalse,
        "test_keys_with_spaces_control_characters_and_non_ascii_round_trip",
        &["delete(\"ünïcödé\") of a special key"],
    ),
    case(
        DeleteManySkipsNonAsciiKeys,
        "test_keys_with_spaces_control_characters_and_non_ascii_round_trip",
        &["delete_many of 9 live special keys", "expected Ok(9)"],
    ),
    case(
        DeleteManyLeavesWhitespaceKeys,
        "test_keys_with_spaces_control_characters_and_non_ascii_round_trip",
        &["after delete and delete_many of special keys"],
    ),
    case(
        SetManyDropsNonAsciiKeys,
        "test_keys_with_spaces_control_characters_and_non_ascii_round_trip",
        &["get(\"emoji 🦀🚀\") after set and set_many of special keys"],
    ),
    case(
        ExistsSeesDeletedEntries,
        "test_long_keys_round_trip",
        &["exists(", "after delete and delete_many of long keys"],
    ),
    case(
        AddTruncatesKeysTo(250),
        "test_long_keys_round_trip",
        &["after add of a long key"],
    ),
    case(
        AddFalseForKeysOver(250),
        "test_long_keys_round_trip",
        &["of an absent key", "expected Ok(true), got Ok(false)"],
    ),
    case(
        KeysNeedingEncodingStoredAsHex,
        "test_distinct_keys_never_collide",
        &["after setting many alike keys"],
    ),
    // TTLs.
    case(
        ZeroTtlIgnoredWithoutPreviousTtl,
        "test_zero_ttl_stores_nothing_and_removes_previous_value",
        &["after set without ttl, then set with a zero ttl"],
    ),
    case(
        TtlIgnoredOverEntryWithoutOne,
        "test_set_of_the_same_value_still_replaces_the_ttl",
        &["set(\"same\", None) then set(\"same\", 300ms)"],
    ),
    case(
        TtlCountedFromFirstWrite,
        "test_overwrite_with_a_longer_ttl_extends_the_entry",
        &["get(\"tck:ttl-restarted-0\")", "again"],
    ),
    coarse(
        TtlCountedFromFirstWrite,
        "test_overwrite_with_a_longer_ttl_extends_the_entry",
        &["get(\"tck:ttl-restarted-0\")", "again"],
    ),
    case(
        TtlsRoundedToNearestSecond,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["1.15s into a 1.4s ttl given by set"],
    ),
    case(
        SetManyTtlsRoundedDown,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["1.3s into a 1.9s ttl given by set_many"],
    ),
    case(
        AddTtlsRoundedDown,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["1.3s into a 1.9s ttl given by add"],
    ),
    case(
        AddWithoutTtlGetsTtl(Duration::from_secs(3)),
        "test_entries_without_ttl_outlive_every_ttl_of_the_run",
        &["get(\"tck:none-add\")", "without ttl by add"],
    ),
    // Values, limits and what is declared.
    case(
        SentinelValuesReadAsMiss,
        "test_binary_values_round_trip",
        &["get(\"tck:binary-null\") after set of binary bytes"],
    ),
    case(
        AddLargestValueRejected,
        "test_largest_value_round_trips",
        &["add(\"tck:largest-add\", 1048576 bytes", "of an absent key"],
    ),
    case(
        DeclaresNoAddButAdds,
        "test_declared_limits_are_within_the_contract",
        &[
            "add of an absent key on a backend that declares no atomic add",
            "Ok(true)",
        ],
    ),
    case(
        DeclaresNoAddButStoresThenRefuses,
        "test_declared_limits_are_within_the_contract",
        &["after add on a backend that declares no atomic add"],
    ),
    case(
        DeclaresNoClearButIgnoresIt,
        "test_declared_limits_are_within_the_contract",
        &["clear on a backend that declares no clear", "Ok(())"],
    ),
    case(
        DeclaresNoClearButClearsThenRefuses,
        "test_declared_limits_are_within_the_contract",
        &["after clear on a backend that declares no clear"],
    ),
    // Long TTLs, reads during a TTL.
    case(
        TtlsCappedAt(Duration::from_secs(5)),
        "test_entries_without_ttl_outlive_every_ttl_of_the_run",
        &["by set with a 3600s ttl"],
    ),
    case(
        TtlMillisecondsKeptIn32Bits,
        "test_entries_without_ttl_outlive_every_ttl_of_the_run",
        &["by set with a 4294968.296s ttl"],
    ),
    case(
        ReadsRestartTheTtl,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["read by get"],
    ),
    // Values.
    case(
        TrailingSpacesOfValuesStripped,
        "test_binary_values_round_trip",
        &["after set of binary bytes", "padded"],
    ),
    case(
        LeadingFeByteTakenForATag,
        "test_binary_values_round_trip",
        &["after set of a value starting with this byte"],
    ),
    case(
        GetManyCutsValuesAt(65_536),
        "test_values_of_every_size_up_to_the_limit_round_trip",
        &["after set_many of 65537 bytes"],
    ),
    case(
        LongKeysShrinkTheValueLimit,
        "test_largest_value_round_trips",
        &["(4096 bytes)"],
    ),
    // Keys.
    case(
        LongKeysKeptByTheirEnds,
        "test_very_long_keys_round_trip_and_stay_apart",
        &["after set of a very long key"],
    ),
    case(
        EncodedSlashDecoded,
        "test_distinct_keys_never_collide",
        &["after setting many alike keys"],
    ),
    case(
        BlankKeysRejected,
        "test_keys_with_spaces_control_characters_and_non_ascii_round_trip",
        &["InvalidKey"],
    ),
    case(
        KeysHashedTo24Bits,
        "test_thousands_of_keys_stay_apart",
        &["after set_many of 70000 keys"],
    ),
    case(
        CharactersKeptIn16Bits,
        "test_distinct_keys_never_collide",
        &["keys alike but for one character, sampled over every plane"],
    ),
    case(
        SlotIdsWrapAt16Bits,
        "test_thousands_of_keys_stay_apart",
        &["after set_many of 70000 keys"],
    ),
    case(
        NewKeysDroppedPast(20_000),
        "test_thousands_of_keys_stay_apart",
        &["after set_many of 70000 keys", "got None"],
    ),
    case(
        ClearStopsAfter(1000),
        "test_thousands_of_keys_stay_apart",
        &["after clear of 70000 entries"],
    ),
    case(
        ClearStopsAfter(100),
        "test_parallel_writers_on_many_threads_lose_no_write",
        &["after clear"],
    ),
    case(
        ClearStopsAfter(100),
        "test_concurrent_use_from_many_tasks",
        &["after clear"],
    ),
    // The five core checks.
    case(
        ValuesTruncated,
        "test_set_and_get_value_without_ttl",
        &["after set without ttl"],
    ),
    case(
        MissReturnedAsEmptyValue,
        "test_get_non_existent_key_is_a_cache_miss",
        &["of a key never set: expected None"],
    ),
    case(
        MissReturnedAsError,
        "test_get_non_existent_key_is_a_cache_miss",
        &["of a key never set: expected Ok"],
    ),
    case(
        TtlIgnored,
        "test_key_expires_after_ttl",
        &["after set with a 1s ttl"],
    ),
    case(
        TtlThreeTimesTooLong,
        "test_key_expires_after_ttl",
        &["after set with a 1s ttl"],
    ),
    case(
        TtlThreeTimesTooLong,
        "test_key_expires_after_ttl",
        &["after set with a 1s ttl"],
    ),
    coarse(
        TtlThreeTimesTooLong,
        "test_key_expires_after_ttl",
        &["after set with a 1s ttl"],
    ),
    case(
        NothingStoredBelow(Duration::from_secs(11)),
        "test_delete_removes_key_before_expiry",
        &["right after set with a 10s ttl"],
    ),
    case(
        DeleteDoesNothing,
        "test_delete_removes_key_before_expiry",
        &["after delete"],
    ),
    case(
        NothingStoredBelow(Duration::from_secs(61)),
        "test_set_overwrites_existing_value_and_ttl",
        &["right after set with a 60s ttl"],
    ),
    case(
        FirstTtlKeptOnOverwrite,
        "test_set_overwrites_existing_value_and_ttl",
        &["after set(60s) then set(1s)"],
    ),
    case(
        OverwriteDropsTtl,
        "test_set_overwrites_existing_value_and_ttl",
        &["after set(60s) then set(1s)"],
    ),
    // TTLs.
    case(
        ZeroTtlStoredForever,
        "test_zero_ttl_stores_nothing_and_removes_previous_value",
        &["after set with a zero ttl"],
    ),
    case(
        ZeroTtlIgnoredOnExistingKey,
        "test_zero_ttl_stores_nothing_and_removes_previous_value",
        &["then set with a zero ttl"],
    ),
    case(
        SetWithoutTtlKeepsOldTtl,
        "test_set_without_ttl_clears_previous_ttl",
        &["then set(None)"],
    ),
    coarse(
        SetWithoutTtlKeepsOldTtl,
        "test_set_without_ttl_clears_previous_ttl",
        &["then set(None)"],
    ),
    case(
        FirstTtlKeptOnOverwrite,
        "test_overwrite_with_a_longer_ttl_extends_the_entry",
        &["then set(60s)"],
    ),
    case(
        SubMillisecondTtlTruncatedToForever,
        "test_ttl_below_granularity_is_rounded_up",
        &["after set with a 300µs ttl"],
    ),
    coarse(
        SubGranularityTtlStoresNothing,
        "test_ttl_below_granularity_is_rounded_up",
        &[
            "get right after set with a 300ms ttl",
            "the value at least once",
        ],
    ),
    case(
        NothingStoredBelow(Duration::from_secs(10)),
        "test_entries_are_present_well_before_their_ttl",
        &["right after set", "with a 300ms ttl"],
    ),
    coarse(
        NothingStoredBelow(Duration::from_secs(10)),
        "test_entries_are_present_well_before_their_ttl",
        &["right after set", "with a 6s ttl"],
    ),
    case(
        TtlsTooShort(10),
        "test_entries_are_present_well_before_their_ttl",
        &["1.5s into its ttl", "with a 6s ttl"],
    ),
    coarse(
        TtlsTooShort(10),
        "test_entries_are_present_well_before_their_ttl",
        &["1.5s into its ttl", "with a 6s ttl"],
    ),
    case(
        TtlsTooShort(100),
        "test_entries_are_present_well_before_their_ttl",
        &["after set with a"],
    ),
    case(
        NoneBecomesTtl(Duration::from_secs(5)),
        "test_entries_without_ttl_outlive_every_ttl_of_the_run",
        &["after it was written without ttl"],
    ),
    coarse(
        NoneBecomesTtl(Duration::from_secs(5)),
        "test_entries_without_ttl_outlive_every_ttl_of_the_run",
        &["after it was written without ttl"],
    ),
    case(
        LongTtlReadAsUnixTime,
        "test_long_ttls_are_readable_right_away",
        &["right after set with a 2678400s ttl"],
    ),
    case(
        MaxTtlAcceptedButNothingStored,
        "test_unrepresentable_ttl_is_kept_or_rejected",
        &["after set with Duration::MAX accepted"],
    ),
    case(
        MaxTtlRefusedAfterRemovingOld,
        "test_unrepresentable_ttl_is_kept_or_rejected",
        &["after set with Duration::MAX refused"],
    ),
    case(
        MaxTtlIsABackendError,
        "test_unrepresentable_ttl_is_kept_or_rejected",
        &["Duration::MAX): expected Ok or Err(InvalidTtl)"],
    ),
    case(
        ExpiredDeleteReportsTrue,
        "test_delete_of_an_expired_entry_returns_false",
        &["of an expired entry"],
    ),
    coarse(
        ExpiredDeleteReportsTrue,
        "test_delete_of_an_expired_entry_returns_false",
        &["of an expired entry"],
    ),
    // Values and limits.
    case(
        DeclaresTinyMaxValueSize,
        "test_declared_limits_are_within_the_contract",
        &["limits().max_value_size"],
    ),
    case(
        DeclaresCoarseGranularity,
        "test_declared_limits_are_within_the_contract",
        &["limits().ttl_granularity"],
    ),
    case(
        DeclaresEndlessGranularity,
        "test_declared_limits_are_within_the_contract",
        &["limits().ttl_granularity", "at most 1s"],
    ),
    case(
        DeclaresHugeMaxValueSize,
        "test_declared_limits_are_within_the_contract",
        &["limits().max_value_size", "at most 1073741824 bytes"],
    ),
    case(
        EmptyValueReadAsMiss,
        "test_empty_value_round_trips",
        &["get(\"tck:empty-value\") after set of an empty value"],
    ),
    case(
        GetManyReadsEmptyAsMiss,
        "test_empty_value_round_trips",
        &["get_many([\"tck:empty-value\"])"],
    ),
    case(
        EmptyValueOverwriteIgnored,
        "test_empty_value_overwrites_non_empty_value",
        &["then \"\""],
    ),
    case(
        ValuesDecodedAsUtf8,
        "test_binary_values_round_trip",
        &["after set of binary bytes"],
    ),
    case(
        LargestValueRejected,
        "test_largest_value_round_trips",
        &["set(\"tck:largest\""],
    ),
    case(
        LargeValuesLoseLastByte,
        "test_largest_value_round_trips",
        &["(the declared limit)"],
    ),
    case(
        OversizedValueAccepted,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &["set of 1048577 bytes", "got Ok"],
    ),
    case(
        ValueTooLargeNamesWrongLimit,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &["set of 1048577 bytes", "got Err(ValueTooLarge"],
    ),
    case(
        SetManyAcceptsOversized,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &["set_many with one value of 1048577 bytes"],
    ),
    case(
        OversizedSetRemovesOldValue,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &["get(\"tck:too-large\") after a refused oversized set"],
    ),
    case(
        OversizedSetEvictsOthers,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &["get(\"tck:bystander\")"],
    ),
    case(
        SetManyWritesBeforeCheckingSizes,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &["get(\"tck:too-large-batch\")"],
    ),
    case(
        WritesLostAfterRefusedValue,
        "test_value_over_limit_is_rejected_and_harms_nothing",
        &["get(\"tck:after-too-large\")"],
    ),
    case(
        DeleteReportsFalse,
        "test_delete_reports_whether_a_live_entry_was_removed",
        &["of a live entry: expected Ok(true)"],
    ),
    case(
        DeleteAlwaysTrue,
        "test_delete_reports_whether_a_live_entry_was_removed",
        &["of an entry deleted already"],
    ),
    case(
        DeleteOfNeverWrittenKeyReportsTrue,
        "test_delete_reports_whether_a_live_entry_was_removed",
        &["of a key never set"],
    ),
    case(
        DeleteOfEmptyValueReportsFalse,
        "test_delete_reports_whether_a_live_entry_was_removed",
        &["holding an empty value"],
    ),
    // Keys.
    case(
        EmptyKeyAcceptedBy(Op::Get),
        "test_empty_key_is_invalid_on_every_operation",
        &["get(\"\")"],
    ),
    case(
        EmptyKeyAcceptedBy(Op::SetNone),
        "test_empty_key_is_invalid_on_every_operation",
        &["set(\"\", \"v\", None)"],
    ),
    case(
        EmptyKeyAcceptedBy(Op::SetTtl),
        "test_empty_key_is_invalid_on_every_operation",
        &["set(\"\", \"v\", 60s)"],
    ),
    case(
        EmptyKeyAcceptedBy(Op::SetZero),
        "test_empty_key_is_invalid_on_every_operation",
        &["set(\"\", \"v\", 0s)"],
    ),
    case(
        EmptyKeyAcceptedBy(Op::Delete),
        "test_empty_key_is_invalid_on_every_operation",
        &["delete(\"\")"],
    ),
    case(
        EmptyKeyAcceptedBy(Op::Exists),
        "test_empty_key_is_invalid_on_every_operation",
        &["exists(\"\")"],
    ),
    case(
        EmptyKeyAcceptedBy(Op::GetMany),
        "test_empty_key_is_invalid_on_every_operation",
        &["get_many([\"tck:a\", \"\"])"],
    ),
    case(
        EmptyKeyAcceptedBy(Op::SetMany),
        "test_empty_key_is_invalid_on_every_operation",
        &["set_many([(\"tck:empty-key-batch\""],
    ),
    case(
        SetManyWritesBeforeValidating,
        "test_empty_key_is_invalid_on_every_operation",
        &["after a refused set_many"],
    ),
    case(
        EmptyKeyAcceptedBy(Op::DeleteMany),
        "test_empty_key_is_invalid_on_every_operation",
        &["delete_many([\"tck:kept\", \"\"])"],
    ),
    case(
        DeleteManyDeletesBeforeValidating,
        "test_empty_key_is_invalid_on_every_operation",
        &["after a refused delete_many"],
    ),
    case(
        KeysRejectedOver(250),
        "test_long_keys_round_trip",
        &["set(\"kkkk", "got Err"],
    ),
    case(
        LongKeysCollideByLength,
        "test_long_keys_round_trip",
        &["after set and set_many of long keys"],
    ),
    case(
        DeleteMissesKeysOver(250),
        "test_long_keys_round_trip",
        &["of a long key: expected Ok(true)"],
    ),
    case(
        KeysRejectedOver(8 << 10),
        "test_very_long_keys_round_trip_and_stay_apart",
        &["set(\"kkkk", "(16384 bytes)", "got Err"],
    ),
    case(
        KeysTruncatedTo(8 << 10),
        "test_very_long_keys_round_trip_and_stay_apart",
        &["after set of a very long key"],
    ),
    case(
        GetManyTruncatesKeysTo(8 << 10),
        "test_very_long_keys_round_trip_and_stay_apart",
        &["get_many(", "after set of very long keys"],
    ),
    case(
        DeleteMissesKeysOver(8 << 10),
        "test_very_long_keys_round_trip_and_stay_apart",
        &["of a very long key: expected Ok(true)"],
    ),
    case(
        DeleteLeavesKeysOver(8 << 10),
        "test_very_long_keys_round_trip_and_stay_apart",
        &["after delete of very long keys"],
    ),
    case(
        KeysWithWhitespaceOrControlsRejected,
        "test_keys_with_spaces_control_characters_and_non_ascii_round_trip",
        &["set(\"with space\"", "got Err"],
    ),
    case(
        GetDoesNotEncodeWhitespaceKeys,
        "test_keys_with_spaces_control_characters_and_non_ascii_round_trip",
        &["get(\"with space\") after set"],
    ),
    case(
        KeysTruncatedTo(250),
        "test_distinct_keys_never_collide",
        &["after setting many alike keys"],
    ),
    case(
        KeysCaseInsensitive,
        "test_distinct_keys_never_collide",
        &["after setting many alike keys"],
    ),
    case(
        FormatCharactersStripped,
        "test_distinct_keys_never_collide",
        &["after setting keys alike but for a format"],
    ),
    case(
        NoncharactersStripped,
        "test_distinct_keys_never_collide",
        &["after setting keys alike but for a format"],
    ),
    case(
        PrivateUseCharactersReplaced,
        "test_distinct_keys_never_collide",
        &["after setting keys alike but for a format"],
    ),
    case(
        LongKeysLowercased,
        "test_distinct_keys_never_collide",
        &["after setting keys alike but for a format"],
    ),
    case(
        CrLfInKeysFolded,
        "test_distinct_keys_never_collide",
        &["after setting keys alike but for a format"],
    ),
    case(
        ValuesOfChunkMultiplesLoseLastByte,
        "test_values_of_every_size_up_to_the_limit_round_trip",
        &["after set of 1400 bytes"],
    ),
    case(
        PlusNumbersCanonical,
        "test_binary_values_round_trip",
        &["tck:binary-plus"],
    ),
    case(
        TtlsRoundedUpToATenthOfASecond,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["with a 1.05s ttl", "expected None"],
    ),
    case(
        LongTtlsRoundedDownToWholeSeconds,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["into a 4.9s ttl"],
    ),
    case(
        TtlsWithASubMillisecondPartRefused,
        "test_ttl_below_granularity_is_rounded_up",
        &["1.000000001s", "invalid ttl"],
    ),
    case(
        AddReadsLeftoverDeadline,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &["tck:add-present-lifted"],
    ),
    case(
        ClearSparesLongLivedEntries,
        "test_clear_removes_entries_from_every_write_path",
        &["tck:clear-month"],
    ),
    case(
        ExistsFalseForKeysOver(8192),
        "test_very_long_keys_round_trip_and_stay_apart",
        &["exists(", "of a very long key after set"],
    ),
    case(
        ReadCopiesKeptWhileReadsAreUnderWay,
        "test_reads_during_overwrites_end_on_the_last_write",
        &["after 200 overwrites on another", "written 200"],
    ),
    case(
        SetManySkipsKeysOver(8192),
        "test_very_long_keys_round_trip_and_stay_apart",
        &["after set_many of very long keys"],
    ),
    case(
        KeysCutAtCarriageReturn,
        "test_keys_cannot_inject_protocol_commands",
        &["after set: expected"],
    ),
    case(
        DeleteCutsKeysAtCarriageReturn,
        "test_keys_cannot_inject_protocol_commands",
        &["of a key with protocol characters"],
    ),
    case(
        KeysInjectDelete,
        "test_keys_cannot_inject_protocol_commands",
        &["get(\"tck:victim\")"],
    ),
    // Bulk operations.
    case(
        GetManySkipsMisses,
        "test_get_many_keeps_order_and_reports_misses",
        &["get_many([\"tck:many-b\""],
    ),
    case(
        GetManyCapsAt100Answers,
        "test_get_many_keeps_order_and_reports_misses",
        &["expected 150 answers"],
    ),
    case(
        GetManyMisordersLongBatches,
        "test_get_many_keeps_order_and_reports_misses",
        &["get_many of 150 keys, answer"],
    ),
    case(
        GetManyDeduplicates,
        "test_get_many_answers_duplicate_keys_at_each_position",
        &["get_many([\"tck:dup\""],
    ),
    case(
        DeleteReportsFalse,
        "test_get_many_agrees_with_get_after_overwrite_delete_and_expiry",
        &["delete(\"tck:gm-deleted\") of a live entry"],
    ),
    case(
        BatchEntriesIgnoreLaterSet,
        "test_get_many_agrees_with_get_after_overwrite_delete_and_expiry",
        &["get(\"tck:gm-batch\")"],
    ),
    case(
        GetManySkipsMisses,
        "test_get_many_agrees_with_get_after_overwrite_delete_and_expiry",
        &["expected 5 answers"],
    ),
    case(
        GetManyStaleAfterOverwrite,
        "test_get_many_agrees_with_get_after_overwrite_delete_and_expiry",
        &["answer 0 (\"tck:gm-overwritten\")"],
    ),
    case(
        GetManySeesDeleted,
        "test_get_many_agrees_with_get_after_overwrite_delete_and_expiry",
        &["answer 1 (\"tck:gm-deleted\")"],
    ),
    case(
        GetManyIgnoresExpiry,
        "test_get_many_agrees_with_get_after_overwrite_delete_and_expiry",
        &["answer 2 (\"tck:gm-expired\")"],
    ),
    coarse(
        GetManyIgnoresExpiry,
        "test_get_many_agrees_with_get_after_overwrite_delete_and_expiry",
        &["answer 2 (\"tck:gm-expired\")"],
    ),
    case(
        EmptyGetManyIsAnError,
        "test_bulk_operations_accept_empty_lists",
        &["get_many([]): expected Ok"],
    ),
    case(
        EmptyGetManyAnswersOneMiss,
        "test_bulk_operations_accept_empty_lists",
        &["get_many([]): expected []"],
    ),
    case(
        EmptySetManyIsAnError,
        "test_bulk_operations_accept_empty_lists",
        &["set_many([], None)"],
    ),
    case(
        EmptySetManyWithTtlIsAnError,
        "test_bulk_operations_accept_empty_lists",
        &["set_many([], 60s)"],
    ),
    case(
        EmptyDeleteManyIsAnError,
        "test_bulk_operations_accept_empty_lists",
        &["delete_many([]): expected Ok, got Err"],
    ),
    case(
        EmptyDeleteManyCountsOne,
        "test_bulk_operations_accept_empty_lists",
        &["delete_many([]): expected Ok(0), got Ok(1)"],
    ),
    case(
        SetManyStoresOnlyLastEntry,
        "test_set_many_stores_every_entry_with_the_ttl",
        &["get(\"tck:sm-1\") after set_many:"],
    ),
    case(
        SetManyFirstValueWins,
        "test_set_many_stores_every_entry_with_the_ttl",
        &["naming the key twice"],
    ),
    case(
        SetManySkipsEmptyValues,
        "test_set_many_stores_every_entry_with_the_ttl",
        &["get(\"tck:sm-empty\") after set_many:"],
    ),
    case(
        SetManyIgnoresTtl,
        "test_set_many_stores_every_entry_with_the_ttl",
        &["get(\"tck:sm-1\")", "after set_many with a 300ms ttl"],
    ),
    case(
        SetManyTtlOnlyOnFirstEntry,
        "test_set_many_stores_every_entry_with_the_ttl",
        &["get(\"tck:sm-2\")", "after set_many with a 300ms ttl"],
    ),
    case(
        SetManyAppliesTtlToEveryLiveEntry,
        "test_set_many_stores_every_entry_with_the_ttl",
        &["untouched by a later set_many"],
    ),
    case(
        SetManyZeroTtlIgnored,
        "test_set_many_stores_every_entry_with_the_ttl",
        &["after set_many with a zero ttl"],
    ),
    case(
        SetManyNoneKeepsOldTtl,
        "test_set_many_without_ttl_clears_previous_ttl",
        &["then set_many(None)"],
    ),
    coarse(
        SetManyNoneKeepsOldTtl,
        "test_set_many_without_ttl_clears_previous_ttl",
        &["then set_many(None)"],
    ),
    case(
        SetManyMaxTtlDropsLastEntry,
        "test_set_many_with_an_unrepresentable_ttl_writes_all_or_nothing",
        &["accepted", "answer 1"],
    ),
    case(
        SetManyMaxTtlWritesFirstThenRefuses,
        "test_set_many_with_an_unrepresentable_ttl_writes_all_or_nothing",
        &["refused", "answer 0"],
    ),
    case(
        SetManyMaxTtlIsABackendError,
        "test_set_many_with_an_unrepresentable_ttl_writes_all_or_nothing",
        &["expected Ok or Err(InvalidTtl)"],
    ),
    case(
        DeleteManyCountsEveryKeyNamed,
        "test_delete_many_counts_removed_entries",
        &["expected Ok(3)"],
    ),
    case(
        DeleteManyLeavesLastLiveKey,
        "test_delete_many_counts_removed_entries",
        &["get(\"tck:dm-3\") after delete_many:"],
    ),
    case(
        DeleteManyRemovesByPrefix,
        "test_delete_many_counts_removed_entries",
        &["after delete_many of other keys"],
    ),
    case(
        DeleteManyCountsExpired,
        "test_delete_many_does_not_count_expired_entries",
        &["expected Ok(1)"],
    ),
    coarse(
        DeleteManyCountsExpired,
        "test_delete_many_does_not_count_expired_entries",
        &["expected Ok(1)"],
    ),
    case(
        DeleteManyLeavesLastLiveKey,
        "test_delete_many_does_not_count_expired_entries",
        &["get_many(", "after delete_many"],
    ),
    case(
        ExistsAlwaysFalse,
        "test_exists_agrees_with_get",
        &["exists(\"tck:exists\") of a live entry"],
    ),
    case(
        ExistsFalseForEmptyValue,
        "test_exists_agrees_with_get",
        &["of a live empty value"],
    ),
    case(
        ExistsAlwaysTrue,
        "test_exists_agrees_with_get",
        &["of a key never set"],
    ),
    case(
        DeleteReportsFalse,
        "test_exists_agrees_with_get",
        &["delete(\"tck:exists\")"],
    ),
    case(
        ExistsSeesDeletedEntries,
        "test_exists_agrees_with_get",
        &["exists(\"tck:exists\") after delete"],
    ),
    case(
        ExistsIgnoresExpiry,
        "test_exists_agrees_with_get",
        &["after its ttl"],
    ),
    // Add.
    case(
        AddUnsupported,
        "test_add_of_an_absent_key_stores_it_and_returns_true",
        &["must implement add natively, or declare that it has no atomic add"],
    ),
    case(
        AddAlwaysFalse,
        "test_add_of_an_absent_key_stores_it_and_returns_true",
        &[
            "add(\"tck:add-short\"",
            "of a key never set: expected Ok(true), got Ok(false)",
        ],
    ),
    case(
        AddRefusesWithoutTtl,
        "test_add_of_an_absent_key_stores_it_and_returns_true",
        &["add(\"tck:add-no-ttl\", \"no ttl\", None) of a key never set: expected Ok(true)"],
    ),
    case(
        AddTrueWhenItsTtlIsShorter,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &[
            "add(\"tck:add-present-long\"",
            "of a key holding a live entry: expected Ok(false), got Ok(true)",
        ],
    ),
    case(
        AddOverwritesWhenItsTtlIsShorter,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &["get(\"tck:add-present-long\") after a refused add: expected Some(\"original\")"],
    ),
    case(
        AddTrueWhenItsTtlIsLonger,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &[
            "add(\"tck:add-present-short-0\"",
            "expected Ok(false), got Ok(true)",
        ],
    ),
    coarse(
        AddTrueWhenItsTtlIsLonger,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &[
            "add(\"tck:add-present-short-0\"",
            "expected Ok(false), got Ok(true)",
        ],
    ),
    case(
        AddDropsEntryWhenItsTtlIsLonger,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &["get(\"tck:add-present-short-0\") after a refused add"],
    ),
    case(
        AddAlwaysFalse,
        "test_add_after_delete_stores_again",
        &["add(\"tck:add-deleted\", \"first\", 3600s) of a key never set: expected Ok(true)"],
    ),
    case(
        AddResurrectsDeletedValue,
        "test_add_after_delete_stores_again",
        &["get(\"tck:add-deleted\") after add, delete, then add"],
    ),
    case(
        AddZeroTtlStoresButReportsFalse,
        "test_add_with_a_zero_ttl_stores_nothing_and_returns_false",
        &["get(\"tck:add-zero\") after add with a zero ttl"],
    ),
    case(
        AddZeroTtlReportsTrueOnPresent,
        "test_add_with_a_zero_ttl_stores_nothing_and_returns_false",
        &[
            "add(\"tck:add-zero-present\"",
            "expected Ok(false), got Ok(true)",
        ],
    ),
    case(
        AddZeroTtlSkipsSizeCheck,
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &["add(\"tck:add-too-large\", 1048577 bytes, 0ns) of an absent key"],
    ),
    case(
        AddOversizedStoresThenRefuses,
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &["get(\"tck:add-too-large\") after a refused oversized add"],
    ),
    case(
        AddOversizedRemovesOld,
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &["get(\"tck:add-too-large-present\") after a refused oversized add"],
    ),
    case(
        AddMaxTtlRefusedAfterStoring,
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &["after add with Duration::MAX refused"],
    ),
    case(
        AddReturnsTrueWithoutStoring,
        "test_add_of_an_absent_key_stores_it_and_returns_true",
        &["get(\"tck:add-new\") after add of a key never set"],
    ),
    case(
        AddStoresEmptyValuesAsNothing,
        "test_add_of_an_absent_key_stores_it_and_returns_true",
        &["get(\"tck:add-empty\") after add of a key never set"],
    ),
    case(
        AddIgnoresTtl,
        "test_add_of_an_absent_key_stores_it_and_returns_true",
        &["get(\"tck:add-short\")", "after add with a 300ms ttl"],
    ),
    coarse(
        AddIgnoresTtl,
        "test_add_of_an_absent_key_stores_it_and_returns_true",
        &["get(\"tck:add-short\")", "after add with a 1s ttl"],
    ),
    case(
        AddAlwaysTrue,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &["of a key holding an empty value: expected Ok(false), got Ok(true)"],
    ),
    case(
        AddCountsEmptyValueAsAbsent,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &[
            "add(\"tck:add-present-empty\"",
            "expected Ok(false), got Ok(true)",
        ],
    ),
    case(
        AddOverwrites,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &["get(\"tck:add-present-empty\") after a refused add"],
    ),
    case(
        AddExtendsTtlOfPresent,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &[
            "get(\"tck:add-present-short-0\")",
            "then a refused add with a 1h ttl",
        ],
    ),
    coarse(
        AddExtendsTtlOfPresent,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &[
            "get(\"tck:add-present-short-0\")",
            "then a refused add with a 1h ttl",
        ],
    ),
    case(
        AddShortensTtlOfPresent,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &[
            "get(\"tck:add-present-long\")",
            "then a refused add with a 300ms ttl",
        ],
    ),
    case(
        AddKeepsExpiredEntry,
        "test_add_over_an_expired_entry_stores_and_returns_true",
        &[
            "add(\"tck:add-expired\"",
            "after set with a 300ms ttl: expected Ok(true)",
        ],
    ),
    coarse(
        AddKeepsExpiredEntry,
        "test_add_over_an_expired_entry_stores_and_returns_true",
        &[
            "add(\"tck:add-expired\"",
            "after set with a 1s ttl: expected Ok(true)",
        ],
    ),
    case(
        AddReturnsTrueWithoutStoring,
        "test_add_over_an_expired_entry_stores_and_returns_true",
        &["get(\"tck:add-expired\") after add over an expired entry"],
    ),
    case(
        AddAlwaysTrue,
        "test_add_after_delete_stores_again",
        &["of a key added already: expected Ok(false)"],
    ),
    case(
        DeleteReportsFalse,
        "test_add_after_delete_stores_again",
        &["delete(\"tck:add-deleted\") of an added entry"],
    ),
    case(
        AddRefusedAfterDelete,
        "test_add_after_delete_stores_again",
        &["\"third\", 3600s) after delete: expected Ok(true)"],
    ),
    case(
        AddReturnsTrueWithoutStoring,
        "test_add_after_delete_stores_again",
        &["\"second\", 3600s) of a key added already: expected Ok(false)"],
    ),
    case(
        AddZeroTtlStores,
        "test_add_with_a_zero_ttl_stores_nothing_and_returns_false",
        &["add(\"tck:add-zero\"", "expected Ok(false), got Ok(true)"],
    ),
    case(
        AddZeroTtlRemovesPresent,
        "test_add_with_a_zero_ttl_stores_nothing_and_returns_false",
        &["get(\"tck:add-zero-present\") after add with a zero ttl over a live entry"],
    ),
    case(
        EmptyKeyAcceptedBy(Op::Add),
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &["add(\"\", \"v\", 3600s)"],
    ),
    case(
        AddZeroTtlSkipsValidation,
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &["add(\"\", \"v\", 0ns)"],
    ),
    case(
        AddOversizedAccepted,
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &["add(\"tck:add-too-large\", 1048577 bytes, 3600s) of an absent key"],
    ),
    case(
        AddChecksPresenceBeforeSize,
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &[
            "of a key holding a live entry (limit 1048576)",
            "got Ok(false)",
        ],
    ),
    case(
        AddMaxTtlIsABackendError,
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &["Duration::MAX) of a key never set: expected Ok(true) or Err(InvalidTtl)"],
    ),
    case(
        AddMaxTtlAcceptedButNothingStored,
        "test_add_refuses_caller_mistakes_and_writes_nothing",
        &["after add with Duration::MAX accepted"],
    ),
    case(
        AddGetThenSet,
        "test_concurrent_adds_from_many_tasks_have_exactly_one_winner",
        &["32 adds of \"tck:add-race-0\" from concurrent tasks: expected exactly one Ok(true)"],
    ),
    case(
        AddOverwrites,
        "test_concurrent_adds_from_many_tasks_have_exactly_one_winner",
        &["get(\"tck:add-race-0\") after 32 adds from concurrent tasks, won by racer 0"],
    ),
    case(
        AddGetThenSet,
        "test_parallel_adds_on_many_threads_have_exactly_one_winner",
        &[
            "32 adds of \"tck:add-par-",
            "on 4 threads: expected exactly one Ok(true)",
        ],
    ),
    case(
        AddOverwrites,
        "test_parallel_adds_on_many_threads_have_exactly_one_winner",
        &["get(\"tck:add-par-0\") after 32 adds on 4 threads, won by racer"],
    ),
    case(
        PanicsOffTheCallerThread,
        "test_parallel_adds_on_many_threads_have_exactly_one_winner",
        &["a panic"],
    ),
    // Clear.
    case(
        ClearUnsupported,
        "test_clear_removes_every_entry",
        &["clear() of 21 entries"],
    ),
    case(
        ClearDoesNothing,
        "test_clear_removes_every_entry",
        &["get(\"tck:clear-0\") after clear"],
    ),
    case(
        ClearSkipsGlobLikeKeys,
        "test_clear_removes_every_entry",
        &["get(\"tck:clear-*\") after clear"],
    ),
    case(
        WritesLostAfterClear,
        "test_clear_removes_every_entry",
        &["get(\"tck:after-clear\")"],
    ),
    case(
        ClearUnsupported,
        "test_clear_removes_entries_from_every_write_path",
        &["clear() of 22 entries"],
    ),
    case(
        ClearSkipsBatchWrites,
        "test_clear_removes_entries_from_every_write_path",
        &["get(\"tck:clear-batch-ttl\") after clear"],
    ),
    case(
        ClearSkipsLongKeys,
        "test_clear_removes_entries_from_every_write_path",
        &["get(\"tck:clear-long-"],
    ),
    case(
        ClearLeavesGetManyAnswers,
        "test_clear_removes_entries_from_every_write_path",
        &["get_many(", "after clear"],
    ),
    case(
        ClearLeavesExistsTrue,
        "test_clear_removes_entries_from_every_write_path",
        &["exists(", "after clear"],
    ),
    case(
        ClearLeavesDeleteManyCounting,
        "test_clear_removes_entries_from_every_write_path",
        &["delete_many of the 22 cleared keys"],
    ),
    case(
        SetManyLostAfterClear,
        "test_clear_removes_entries_from_every_write_path",
        &["after clear, then set_many"],
    ),
    case(
        ClearFailsOnEmptyCache,
        "test_clear_on_an_empty_cache_succeeds",
        &["clear() of an empty cache"],
    ),
    case(
        ClearFailsWhenAlreadyClear,
        "test_clear_on_an_empty_cache_succeeds",
        &["clear() twice"],
    ),
    case(
        MissesReadAsEmptyAfterClear,
        "test_clear_on_an_empty_cache_succeeds",
        &["after clear of an empty cache"],
    ),
    // Concurrency.
    case(
        GetAnswersTheLatestWriteOfAnyKey,
        "test_concurrent_use_from_many_tasks",
        &["by the task that wrote it: expected Some"],
    ),
    case(
        DeleteReportsFalse,
        "test_concurrent_use_from_many_tasks",
        &["by the task that wrote it: expected Ok(true)"],
    ),
    case(
        LostConcurrentWrites,
        "test_concurrent_use_from_many_tasks",
        &["after 64 tasks wrote 20 rounds each"],
    ),
    case(
        ConcurrentWritesTorn,
        "test_concurrent_use_from_many_tasks",
        &["get(\"tck:conc-shared\")", "one of the written values"],
    ),
    case(
        DeleteReportsFalse,
        "test_parallel_writers_on_many_threads_lose_no_write",
        &["by the writer that wrote it"],
    ),
    case(
        PanicsOffTheCallerThread,
        "test_parallel_writers_on_many_threads_lose_no_write",
        &["a panic"],
    ),
    case(
        LostConcurrentWrites,
        "test_parallel_writers_on_many_threads_lose_no_write",
        &["writer"],
    ),
    case(
        DropsWritesWhileAnotherIsInFlight,
        "test_parallel_writers_on_many_threads_lose_no_write",
        &["writer"],
    ),
    case(
        WritesStayOnTheirThread,
        "test_parallel_writers_on_many_threads_lose_no_write",
        &["get(\"tck:par-0-0\") after 64 writers on 4 threads"],
    ),
    case(
        OverwriteIgnoredWhileOthersInFlight,
        "test_parallel_writers_on_many_threads_lose_no_write",
        &["-hot\") after 64 writers on 4 threads"],
    ),
    case(
        ConcurrentWritesTorn,
        "test_parallel_writers_on_many_threads_lose_no_write",
        &["get(\"tck:par-shared\")", "one of the written values"],
    ),
    case(
        GetManyStaleAfterOverwrite,
        "test_parallel_writers_on_many_threads_lose_no_write",
        &["get_many(", "after 64 writers on 4 threads"],
    ),
    // Checks and steps added after the mutation runs of the kit.
    case(
        SameValueSetSkipped,
        "test_set_of_the_same_value_still_replaces_the_ttl",
        &["get(\"tck:same-kept\")", "then set(\"same\", None)"],
    ),
    case(
        TtlsOverTwoSecondsIgnored,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["get(\"tck:seconds-expiring\")", "2.5s ttl"],
    ),
    case(
        ExpiresLate(Duration::from_millis(90)),
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &["get(\"tck:seconds-expiring\")", "2.5s ttl"],
    ),
    case(
        TtlsRoundedDownToWholeSeconds,
        "test_ttls_of_seconds_are_kept_to_the_granularity",
        &[
            "get(\"tck:seconds-1900-set-0\")",
            "into a 1.9s ttl given by set",
        ],
    ),
    case(
        LongTtlMisreadJustPastThirtyDays,
        "test_long_ttls_are_readable_right_away",
        &["right after set with a 2592000.5s ttl"],
    ),
    case(
        HugeTtlsAreBackendErrors,
        "test_unrepresentable_ttl_is_kept_or_rejected",
        &[
            "set(\"tck:ttl-max\", \"after\", 3153600000s)",
            "Ok or Err(InvalidTtl)",
        ],
    ),
    case(
        CompressedLookingValuesStripped,
        "test_binary_values_round_trip",
        &["get(\"tck:binary-gzip\")"],
    ),
    case(
        MidSizedValuesLoseLastByte,
        "test_values_of_every_size_up_to_the_limit_round_trip",
        &["after set of 65537 bytes"],
    ),
    case(
        LoneEmptyKeyAcceptedByBatches,
        "test_empty_key_is_invalid_on_every_operation",
        &["get_many([\"\"])"],
    ),
    case(
        NonAsciiKeysLossy,
        "test_distinct_keys_never_collide",
        &["get(\"über\")"],
    ),
    case(
        RareControlCharactersStripped,
        "test_distinct_keys_never_collide",
        &["get(\"ctl", "after setting many alike keys"],
    ),
    case(
        SetManyStoresFirstEight,
        "test_set_many_stores_every_entry_with_the_ttl",
        &["get(\"tck:sm-many-8\") after set_many of 21 entries"],
    ),
    case(
        DeleteManyStopsAtSixteen,
        "test_delete_many_counts_removed_entries",
        &["delete_many of 40 live keys"],
    ),
    case(
        ClearSkipsNonAsciiKeys,
        "test_clear_removes_entries_from_every_write_path",
        &["get(\"tck:clear-ünïcödé\") after clear"],
    ),
    case(
        ClearSkipsAddedEntries,
        "test_clear_removes_entries_from_every_write_path",
        &["get(\"tck:clear-add-ttl\") after clear"],
    ),
    case(
        RefusedAddWithoutTtlPersists,
        "test_add_of_a_present_key_returns_false_and_changes_nothing",
        &["then a refused add with no ttl"],
    ),
    case(
        ReadsCachedPerThread,
        "test_writes_on_one_thread_are_seen_by_reads_on_another",
        &["after a set on the writer's"],
    ),
];

#[derive(Clone)]
struct Stored {
    value: Bytes,
    /// The clock tick at which the entry is gone; `None`: no TTL.
    expires: Option<u128>,
    /// Written by `set_many`.
    batch: bool,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Stored>,
    /// The first value ever written under a key.
    first_values: HashMap<String, Bytes>,
    /// Entries removed by `delete`, and by `clear`.
    deleted: HashMap<String, Stored>,
    cleared: HashMap<String, Stored>,
    ever_written: HashSet<String>,
    /// Keys `add` stored.
    added: HashSet<String>,
    last_written: Option<Bytes>,
    cleared_once: bool,
    clear_is_clean: bool,
    refused_a_value: bool,
    /// The TTL, in ticks, each entry with one was last written with.
    ttl_ticks: HashMap<String, u128>,
    /// The tick at which each entry was written while absent.
    first_write: HashMap<String, u128>,
    /// Keys whose entry a zero TTL removed.
    zeroed: HashSet<String>,
    /// Keys whose entry a `set_many` with a zero TTL removed, for
    /// [`SetManyZeroTtlLeavesTombstoneFor`].
    tombstones: HashSet<String>,
    /// Keys an `add` refused, for [`AddLeaksAClaimWhenRefused`].
    claimed: HashSet<String>,
    /// The last deadline each key was written with, kept when a later write has none,
    /// for [`AddReadsLeftoverDeadline`].
    deadlines: HashMap<String, u128>,
}

/// Where a key is used, for defects that encode keys on one path only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Write,
    Read,
    BulkRead,
    Delete,
}

/// A straightforward honest cache (when `defect` is `None`), made wrong in exactly one
/// way otherwise. Its clock ticks on its own, once per granularity, like memcached's:
/// an entry with a TTL of `n` ticks goes at the `n`th tick after the one it was set in.
struct Reference {
    defect: Option<Defect>,
    granularity: Duration,
    epoch: Instant,
    state: Mutex<State>,
    in_flight: AtomicUsize,
    /// Values `get` read, for [`ReadCopiesKeptWhileReadsAreUnderWay`], and the reads
    /// under way.
    copies: Mutex<HashMap<String, Bytes>>,
    reads: AtomicUsize,
    /// The entry numbers of [`SlotIdsWrapAt16Bits`], by key.
    slots: Mutex<HashMap<String, u16>>,
}

const MAX_VALUE_SIZE: usize = 1 << 20;

/// The copies of [`ReadsCachedPerThread`] on one thread: by reference and key, a value
/// and when it was read.
type NearCopies = HashMap<(usize, String), (Option<Bytes>, Instant)>;

thread_local! {
    static NEAR: std::cell::RefCell<NearCopies> = std::cell::RefCell::new(HashMap::new());
}
const REFERENCE: &str = "reference";

fn backend_error(message: &'static str) -> CacheError {
    CacheError::Backend {
        backend: REFERENCE,
        source: message.into(),
    }
}

impl Reference {
    fn new(defect: Option<Defect>, clock: Clock) -> Self {
        Self {
            defect,
            granularity: match clock {
                Fine => Duration::from_millis(1),
                Coarse => SECOND,
            },
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
            in_flight: AtomicUsize::new(0),
            copies: Mutex::new(HashMap::new()),
            reads: AtomicUsize::new(0),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn has(&self, defect: Defect) -> bool {
        self.defect == Some(defect)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn tick(&self) -> u128 {
        self.epoch.elapsed().as_nanos() / self.granularity.as_nanos()
    }

    fn live(&self, stored: &Stored) -> bool {
        stored.expires.is_none_or(|tick| self.tick() < tick)
    }

    /// [`live`](Self::live), for the reads besides `get`, which
    /// [`ReadsBesidesGetExpireLate`] makes see an entry 90 ms past its expiry.
    fn live_besides_get(&self, stored: &Stored) -> bool {
        if !self.has(ReadsBesidesGetExpireLate) {
            return self.live(stored);
        }
        let late = Duration::from_millis(90).as_nanos() / self.granularity.as_nanos();
        stored.expires.is_none_or(|tick| self.tick() < tick + late)
    }

    /// Whether a defect keeps this entry forever whatever its TTL.
    fn never_expires(&self, key: &str, value: &[u8]) -> bool {
        (self.has(EmptyValuesNeverExpire) && value.is_empty())
            || (self.has(LargeValuesNeverExpire) && value.len() > 65_536)
            || (self.has(LongKeysNeverExpire) && key.len() > 250)
            || (self.has(NonAsciiKeysNeverExpire) && !key.is_ascii())
    }

    fn key_for(&self, key: &str, path: Path) -> String {
        let mut key = key.to_owned();
        if let Some(KeysTruncatedTo(len)) = self.defect {
            key = truncate(&key, len);
        }
        if let Some(GetManyTruncatesKeysTo(len)) = self.defect {
            if path == Path::BulkRead {
                key = truncate(&key, len);
            }
        }
        if self.has(KeysCaseInsensitive) {
            key = key.to_lowercase();
        }
        if self.has(ZeroWidthCharactersStripped) {
            key.retain(|c| !matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'));
        }
        if self.has(FormatCharactersStripped) {
            key.retain(|c| {
                !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}' | '\u{fe0e}' | '\u{fe0f}' | '\u{ad}' | '\u{34f}')
            });
        }
        if self.has(NoncharactersStripped) {
            key.retain(|c| !matches!(c, '\u{fdd0}'..='\u{fdef}' | '\u{fffe}' | '\u{ffff}'));
        }
        if self.has(PrivateUseCharactersReplaced) {
            key = key
                .chars()
                .map(|c| {
                    if matches!(c, '\u{e000}'..='\u{f8ff}') {
                        '?'
                    } else {
                        c
                    }
                })
                .collect();
        }
        if self.has(LongKeysLowercased) && key.len() > 250 {
            key = key.to_lowercase();
        }
        if self.has(CrLfInKeysFolded) {
            key = key.replace("\r\n", "\n");
        }
        if self.has(NonAsciiWhitespaceTrimmed) {
            key = key
                .trim_matches(|c: char| c.is_whitespace() && !c.is_ascii())
                .to_owned();
        }
        if self.has(KeysCutAtCarriageReturn)
            || (self.has(DeleteCutsKeysAtCarriageReturn) && path == Path::Delete)
        {
            key = key.split('\r').next().unwrap_or_default().to_owned();
        }
        if self.has(LongKeysCollideByLength) && key.len() > 250 {
            key = format!("#long key of {} bytes", key.len());
        }
        if self.has(LongKeysKeptByTheirEnds) && key.len() > 2048 {
            let (head, tail) = (truncate(&key, 1024), &key[key.len() - 1024..]);
            key = format!("{head}#{}#{tail}", key.len());
        }
        if self.has(EncodedSlashDecoded) {
            key = key.replace("%2F", "/").replace("%2f", "/");
        }
        if self.has(KeysHashedTo24Bits) {
            let hash = key.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
                (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
            });
            key = format!("#{:06x}", hash & 0xff_ffff);
        }
        if self.has(CharactersKeptIn16Bits) {
            key = key
                .chars()
                .map(|c| char::from_u32(u32::from(c) & 0xffff).unwrap_or('\u{fffd}'))
                .collect();
        }
        if self.has(SlotIdsWrapAt16Bits) {
            let mut slots = self.slots.lock().unwrap();
            #[allow(clippy::cast_possible_truncation)]
            let next = slots.len() as u16;
            key = format!("#slot {}", *slots.entry(key).or_insert(next));
        }
        if let Some(DeleteMissesKeysOver(len)) = self.defect {
            if path == Path::Delete && key.len() > len {
                key.push_str("#not encoded");
            }
        }
        if self.has(GetDoesNotEncodeWhitespaceKeys)
            && path != Path::Read
            && key.chars().any(char::is_whitespace)
        {
            key = format!("b64:{key}");
        }
        if self.has(KeysNeedingEncodingStoredAsHex) && key.bytes().any(|b| !b.is_ascii_graphic()) {
            key = format!(
                "hex:{}",
                key.bytes().map(|b| format!("{b:02x}")).collect::<String>()
            );
        }
        if self.has(LongKeysKeptAsHeadLengthAndSum) && key.len() > 250 {
            let sum: u32 = key.bytes().map(u32::from).sum();
            key = format!("{}#{}#{sum:08x}", truncate(&key, 200), key.len());
        }
        if self.has(LongKeysSlicedAtByte200) && key.len() > 250 {
            #[allow(clippy::string_slice)] // The defect: it panics inside a character.
            let (head, tail) = (&key[..200], &key[200..]);
            key = format!("{head}#{tail}");
        }
        if self.has(ColonsStoredAsSlashes) {
            key = key.replace(':', "/");
        }
        if self.has(ControlsEscapedButNotBackslash) {
            key = key
                .replace('\n', "\\n")
                .replace('\r', "\\r")
                .replace('\t', "\\t")
                .replace(' ', "\\s")
                .replace('\0', "\\0");
        }
        if self.has(C1ControlsStripped) {
            key.retain(|c| !matches!(c, '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}'));
        }
        if self.has(FullwidthFoldedToAscii) {
            key = key
                .chars()
                .map(|c| match c {
                    '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
                    _ => c,
                })
                .collect();
        }
        if self.has(WritesStayOnTheirThread) {
            key = format!("{:?}/{key}", std::thread::current().id());
        }
        if self.has(NonAsciiKeysLossy) {
            key = key
                .chars()
                .map(|c| if c.is_ascii() { c } else { '?' })
                .collect();
        }
        if self.has(RareControlCharactersStripped) {
            key.retain(|c| !c.is_control() || matches!(c, '\0' | '\t' | '\n' | '\r'));
        }
        key
    }

    fn check_key(&self, key: &str, op: Op) -> Result<(), CacheError> {
        let refused = matches!(self.defect, Some(KeysRejectedOver(len)) if key.len() > len)
            || (self.has(KeysWithWhitespaceOrControlsRejected)
                && key.chars().any(|c| c.is_whitespace() || c.is_control()))
            || (self.has(BlankKeysRejected) && !key.is_empty() && key.trim().is_empty());
        if refused {
            return Err(CacheError::InvalidKey {
                reason: "not a native key",
            });
        }
        if self.has(EmptyKeyAcceptedBy(op)) {
            return Ok(());
        }
        validate_key(key)
    }

    fn check_keys<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
        op: Op,
    ) -> Result<(), CacheError> {
        keys.into_iter().try_for_each(|key| self.check_key(key, op))
    }

    fn check_value(&self, value: &Bytes) -> Result<(), CacheError> {
        let limit = self.limits().max_value_size;
        if self.has(FarOversizedIsABackendError) && value.len() >= 2 * limit {
            return Err(backend_error("value too large for a frame"));
        }
        let too_large = if self.has(LargestValueRejected) {
            value.len() >= limit
        } else {
            value.len() > limit
        };
        if too_large && !self.has(OversizedValueAccepted) {
            let limit = if self.has(ValueTooLargeNamesWrongLimit) {
                limit + 1
            } else {
                limit
            };
            let size = if self.has(ValueTooLargeNamesLimitPlusOne) {
                limit + 1
            } else {
                value.len()
            };
            return Err(CacheError::ValueTooLarge { size, limit });
        }
        Ok(())
    }

    /// The tick at which an entry written now with `ttl` goes.
    fn expires(&self, ttl: Duration) -> Result<Option<u128>, CacheError> {
        let mut ttl = ttl;
        if self.has(TtlThreeTimesTooLong) {
            ttl = ttl.checked_mul(3).unwrap_or(Duration::MAX);
        }
        if let Some(TtlsTooShort(factor)) = self.defect {
            ttl /= factor;
        }
        if self.has(TtlsOverTwoSecondsIgnored) && ttl > 2 * SECOND {
            return Ok(None);
        }
        if self.has(TtlsOfThreeSecondsIgnored) && ttl >= 3 * SECOND {
            return Ok(None);
        }
        if self.has(TtlsRoundedUpToTheMinute) && ttl >= 3 * SECOND && ttl < SECOND * 3600 {
            ttl = Duration::from_secs(ttl.as_secs().div_ceil(60) * 60 + 60);
        }
        if self.has(BriefTtlsNeverExpire)
            && ttl >= Duration::from_millis(2)
            && ttl < Duration::from_millis(250)
        {
            return Ok(None);
        }
        if self.has(TtlsOverThreeSecondsRoundedUpToFiveSeconds) && ttl > 3 * SECOND {
            ttl = Duration::from_secs(ttl.as_secs_f64().div_euclid(5.0) as u64 * 5 + 5);
        }
        if self.has(TtlsRoundedDownToWholeSeconds) && ttl > SECOND {
            ttl = Duration::from_secs(ttl.as_secs());
        }
        if self.has(LongTtlsRoundedDownToWholeSeconds) && ttl >= 4 * SECOND {
            ttl = Duration::from_secs(ttl.as_secs());
        }
        if self.has(TtlsRoundedUpToATenthOfASecond) {
            let tenth = Duration::from_millis(100).as_nanos();
            ttl = Duration::from_nanos(
                u64::try_from(ttl.as_nanos().div_ceil(tenth) * tenth).unwrap_or(u64::MAX),
            );
        }
        if self.has(TtlsWithASubMillisecondPartRefused)
            && ttl >= Duration::from_millis(1)
            && !ttl.subsec_nanos().is_multiple_of(1_000_000)
        {
            return Err(CacheError::InvalidTtl {
                ttl,
                reason: "sub-millisecond precision",
            });
        }
        if self.has(TtlsRoundedToNearestSecond) && ttl > SECOND && ttl < SECOND * 100 {
            ttl = Duration::from_secs((ttl.as_millis() as u64 + 500) / 1000);
        }
        if let Some(ExpiresLate(late)) = self.defect {
            ttl = ttl.saturating_add(late);
        }
        if let Some(TtlsCappedAt(cap)) = self.defect {
            ttl = ttl.min(cap);
        }
        if self.has(TtlMillisecondsKeptIn32Bits) {
            ttl = Duration::from_millis(u64::from(ttl.as_millis() as u32));
        }
        let thirty_days = Duration::from_secs(30 * 24 * 3600);
        if self.has(LongTtlMisreadJustPastThirtyDays)
            && ttl > thirty_days
            && ttl < thirty_days + SECOND
        {
            return Ok(Some(0));
        }
        if self.has(HugeTtlsAreBackendErrors)
            && ttl != Duration::MAX
            && ttl > Duration::from_secs(50 * 365 * 24 * 3600)
        {
            return Err(backend_error("expiry out of range"));
        }
        if self.has(SubMillisecondTtlTruncatedToForever) && ttl.as_millis() == 0 {
            return Ok(None);
        }
        let gone = (self.has(SubGranularityTtlStoresNothing) && ttl < self.granularity)
            || matches!(self.defect, Some(NothingStoredBelow(below)) if ttl < below)
            || (self.has(LongTtlReadAsUnixTime) && ttl > Duration::from_secs(30 * 24 * 3600));
        if gone {
            return Ok(Some(0));
        }
        if self.has(MaxTtlIsABackendError) && ttl == Duration::MAX {
            return Err(backend_error("instant overflow"));
        }
        let ticks = ttl.as_nanos().div_ceil(self.granularity.as_nanos());
        Ok(Some(self.tick().saturating_add(ticks)))
    }

    /// Lets other tasks on this thread run, and other threads too.
    async fn pause() {
        std::thread::yield_now();
        tokio::task::yield_now().await;
    }

    /// `set`, from `set` (`batch` false) or from `set_many` (`batch` true), key and value
    /// checked already.
    async fn store(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        batch: bool,
    ) -> Result<(), CacheError> {
        if self.has(PanicsOffTheCallerThread) && std::thread::current().name().is_none() {
            std::panic::panic_any(DELIBERATE_PANIC);
        }
        if self.has(KeysInjectDelete) {
            if let Some(victim) = key
                .split("\r\n")
                .find_map(|line| line.strip_prefix("delete "))
            {
                let victim = self.key_for(victim, Path::Delete);
                self.lock().entries.remove(&victim);
            }
        }
        let native = self.key_for(key, Path::Write);
        {
            let mut state = self.lock();
            state.tombstones.remove(&native);
            let full = matches!(self.defect, Some(NewKeysDroppedPast(count))
                if state.entries.len() >= count && !state.entries.contains_key(&native));
            if full
                || (self.has(WritesLostAfterClear) && state.cleared_once)
                || (self.has(SetManyLostAfterClear) && batch && state.cleared_once)
                || (self.has(WritesLostAfterRefusedValue) && state.refused_a_value)
            {
                return Ok(());
            }
        }
        let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = self
            .store_checked(&native, value, ttl, batch, in_flight)
            .await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    async fn store_checked(
        &self,
        native: &str,
        value: Bytes,
        ttl: Option<Duration>,
        batch: bool,
        others_in_flight: usize,
    ) -> Result<(), CacheError> {
        let previous = {
            let state = self.lock();
            state
                .entries
                .get(native)
                .filter(|stored| self.live(stored))
                .cloned()
        };
        if ttl == Some(Duration::MAX) && !batch {
            if self.has(MaxTtlAcceptedButNothingStored) {
                return Ok(());
            }
            if self.has(MaxTtlRefusedAfterRemovingOld) {
                self.lock().entries.remove(native);
                return Err(CacheError::InvalidTtl {
                    ttl: Duration::MAX,
                    reason: "too long",
                });
            }
        }
        if previous.is_some() {
            let ignored = (value.is_empty() && self.has(EmptyValueOverwriteIgnored))
                || (self.has(SameValueSetSkipped)
                    && !batch
                    && !ttl.is_some_and(|ttl| ttl.is_zero())
                    && previous.as_ref().is_some_and(|p| p.value == value))
                || (self.has(BatchEntriesIgnoreLaterSet)
                    && !batch
                    && previous.as_ref().is_some_and(|p| p.batch))
                || (self.has(OverwriteIgnoredWhileOthersInFlight) && others_in_flight > 0);
            if ignored {
                Self::pause().await;
                return Ok(());
            }
        }
        if self.has(DropsWritesWhileAnotherIsInFlight) && others_in_flight > 0 {
            Self::pause().await;
            return Ok(());
        }
        let expires = match ttl {
            Some(ttl) if ttl.is_zero() && !self.has(ZeroTtlStoredForever) => {
                let ignored = (self.has(ZeroTtlIgnoredOnExistingKey) && previous.is_some())
                    || (self.has(ZeroTtlIgnoredWithoutPreviousTtl)
                        && previous.as_ref().is_some_and(|p| p.expires.is_none()));
                if !ignored {
                    let mut state = self.lock();
                    state.entries.remove(native);
                    state.zeroed.insert(native.to_owned());
                }
                return Ok(());
            }
            Some(ttl) if ttl.is_zero() => None,
            _ if self.has(TtlIgnored) || self.never_expires(native, &value) => None,
            Some(_) if self.has(FirstTtlKeptOnOverwrite) && previous.is_some() => {
                previous.as_ref().and_then(|p| p.expires)
            }
            Some(_) if self.has(OverwriteDropsTtl) && previous.is_some() => None,
            Some(_)
                if self.has(TtlIgnoredOverEntryWithoutOne)
                    && previous.as_ref().is_some_and(|p| p.expires.is_none()) =>
            {
                None
            }
            Some(ttl)
                if self.has(TtlCountedFromFirstWrite)
                    && previous.as_ref().is_some_and(|p| p.expires.is_some()) =>
            {
                let since = self.lock().first_write.get(native).copied();
                let ticks = ttl.as_nanos().div_ceil(self.granularity.as_nanos());
                since.map(|since| since + ticks)
            }
            None if !batch && self.has(SetNoneOverExpiredKeepsOldExpiry) => {
                self.expired(native).and_then(|(expires, _)| expires)
            }
            None if !batch && self.has(SetNoneOverExpiredReusesOldTtl) => self
                .expired(native)
                .and_then(|(_, ticks)| ticks)
                .map(|ticks| self.tick() + ticks),
            None if (self.has(SetWithoutTtlKeepsOldTtl) && !batch
                || self.has(SetManyNoneKeepsOldTtl) && batch)
                && previous.is_some() =>
            {
                previous.as_ref().and_then(|p| p.expires)
            }
            None => match self.defect {
                Some(NoneBecomesTtl(ttl)) => self.expires(ttl)?,
                _ => None,
            },
            Some(ttl) => self.expires(ttl)?,
        };
        let stored = Stored {
            value: value.clone(),
            expires,
            batch,
        };
        if self.has(LostConcurrentWrites) {
            // Copy, change, write back: whatever others wrote in between is lost.
            let mut copy = self.lock().entries.clone();
            Self::pause().await;
            copy.insert(native.to_owned(), stored);
            self.lock().entries = copy;
        } else if self.has(ConcurrentWritesTorn) && value.len() > 1 {
            let half = value.len() / 2;
            let first = Stored {
                value: value.slice(..half),
                ..stored
            };
            self.lock().entries.insert(native.to_owned(), first);
            Self::pause().await;
            let mut state = self.lock();
            if let Some(stored) = state.entries.get_mut(native) {
                stored.value = Bytes::from([&stored.value[..], &value[half..]].concat());
            }
        } else {
            let mut state = self.lock();
            if let Some(expires) = stored.expires {
                let ticks = expires.saturating_sub(self.tick());
                state.ttl_ticks.insert(native.to_owned(), ticks);
                state.deadlines.insert(native.to_owned(), expires);
            }
            if previous.is_none() {
                state.first_write.insert(native.to_owned(), self.tick());
            }
            state.entries.insert(native.to_owned(), stored);
            state.last_written = Some(value.clone());
        }
        {
            let mut state = self.lock();
            state.ever_written.insert(native.to_owned());
            state.clear_is_clean = false;
            state.first_values.entry(native.to_owned()).or_insert(value);
        }
        if self.has(GetAnswersTheLatestWriteOfAnyKey)
            || self.has(DropsWritesWhileAnotherIsInFlight)
            || self.has(OverwriteIgnoredWhileOthersInFlight)
        {
            // Still in flight: the next writer sees this one.
            Self::pause().await;
        }
        Ok(())
    }

    /// `get` through a copy kept per thread for 200 ms, which only this thread's own
    /// writes refresh.
    fn near(&self, key: &str) -> Option<Bytes> {
        let slot = (std::ptr::from_ref(self) as usize, key.to_owned());
        NEAR.with(|near| {
            let mut near = near.borrow_mut();
            if let Some((value, at)) = near.get(&slot) {
                if at.elapsed() < Duration::from_millis(200) {
                    return value.clone();
                }
            }
            let value = self.read(key, Path::Read);
            near.insert(slot, (value.clone(), Instant::now()));
            value
        })
    }

    /// Drops this thread's copy of `key`.
    fn forget_near(&self, key: &str) {
        if self.has(ReadsCachedPerThread) {
            let slot = (std::ptr::from_ref(self) as usize, key.to_owned());
            NEAR.with(|near| near.borrow_mut().remove(&slot));
        }
    }

    /// `get` with the key checked already.
    fn read(&self, key: &str, path: Path) -> Option<Bytes> {
        let mut state = self.lock();
        let native = self.key_for(key, path);
        if self.has(ReadsRestartTheTtl) {
            let ticks = state.ttl_ticks.get(&native).copied();
            let now = self.tick();
            if let (Some(stored), Some(ticks)) = (state.entries.get_mut(&native), ticks) {
                if stored.expires.is_some_and(|tick| now < tick) {
                    stored.expires = Some(now + ticks);
                }
            }
        }
        let value = state
            .entries
            .get(&native)
            .filter(|stored| match path {
                Path::BulkRead => self.live_besides_get(stored),
                _ => self.live(stored),
            })
            .map(|stored| stored.value.clone());
        match value {
            None if self.has(MissesReadAsEmptyAfterClear) && state.cleared_once => {
                Some(Bytes::new())
            }
            Some(_) if self.has(GetAnswersTheLatestWriteOfAnyKey) => state.last_written.clone(),
            Some(value) if value.is_empty() && self.has(EmptyValueReadAsMiss) => None,
            Some(value) if &value[..] == b"\0" && self.has(LoneNulReadAsEmpty) => {
                Some(Bytes::new())
            }
            Some(value)
                if self.has(ValuesOfHundredsOfKiBFlipTheirMiddleByte)
                    && (128 * 1024..=512 * 1024).contains(&value.len()) =>
            {
                let mut flipped = value.to_vec();
                flipped[value.len() / 2] ^= 1;
                Some(Bytes::from(flipped))
            }
            Some(value) if &value[..] == b"null" && self.has(SentinelValuesReadAsMiss) => None,
            Some(value) if self.has(ValuesTruncated) => Some(value.slice(..value.len().min(16))),
            Some(value)
                if self.has(ValuesOfChunkMultiplesLoseLastByte)
                    && !value.is_empty()
                    && value.len().is_multiple_of(1400) =>
            {
                Some(value.slice(..value.len() - 1))
            }
            Some(value)
                if self.has(PlusNumbersCanonical)
                    && value.len() > 1
                    && value[0] == b'+'
                    && value[1..].iter().all(u8::is_ascii_digit) =>
            {
                Some(value.slice(1..))
            }
            Some(value) if self.has(LargeValuesLoseLastByte) && value.len() > 1000 => {
                Some(value.slice(..value.len() - 1))
            }
            Some(value)
                if self.has(MidSizedValuesLoseLastByte)
                    && value.len() > 65_536
                    && value.len() < MAX_VALUE_SIZE =>
            {
                Some(value.slice(..value.len() - 1))
            }
            Some(value)
                if self.has(CompressedLookingValuesStripped)
                    && value.starts_with(&[0x1f, 0x8b]) =>
            {
                Some(value.slice(2..))
            }
            Some(value) if self.has(LeadingFfFeStripped) && value.starts_with(&[0xff, 0xfe]) => {
                Some(value.slice(2..))
            }
            Some(value)
                if self.has(ValuesOf4To12KiBFlipTheirMiddleByte)
                    && (4096..=12_288).contains(&value.len()) =>
            {
                let mut flipped = value.to_vec();
                flipped[value.len() / 2] ^= 1;
                Some(Bytes::from(flipped))
            }
            Some(value) if self.has(FirstRunOf256EqualBytesLosesAByte) => {
                let run = value
                    .windows(256)
                    .position(|window| window.iter().all(|byte| *byte == window[0]));
                Some(match run {
                    Some(at) => Bytes::from([&value[..at], &value[at + 1..]].concat()),
                    None => value,
                })
            }
            Some(value) if self.has(LeadingFeByteTakenForATag) && value.starts_with(&[0xfe]) => {
                Some(value.slice(1..))
            }
            Some(value) if self.has(TrailingSpacesOfValuesStripped) => {
                let kept = value.len() - value.iter().rev().take_while(|b| **b == b' ').count();
                Some(value.slice(..kept))
            }
            Some(value) if self.has(ValuesDecodedAsUtf8) => {
                Some(Bytes::from(String::from_utf8_lossy(&value).into_owned()))
            }
            other => other,
        }
    }

    /// `delete` with the key checked already.
    fn remove(&self, key: &str) -> bool {
        let native = self.key_for(key, Path::Delete);
        let mut state = self.lock();
        if self.has(DeleteDoesNothing) {
            return true;
        }
        let leave = matches!(self.defect, Some(DeleteLeavesKeysOver(len)) if key.len() > len);
        let removed = if leave {
            state.entries.get(&native).cloned()
        } else {
            state.entries.remove(&native)
        };
        if let Some(stored) = &removed {
            state.deleted.insert(native.clone(), stored.clone());
        }
        match removed {
            _ if self.has(DeleteAlwaysTrue)
                || self.has(DeleteOfNeverWrittenKeyReportsTrue)
                    && !state.ever_written.contains(&native) =>
            {
                true
            }
            _ if self.has(DeleteReportsFalse) => false,
            Some(stored) if stored.value.is_empty() && self.has(DeleteOfEmptyValueReportsFalse) => {
                false
            }
            Some(_) if self.has(ExpiredDeleteReportsTrue) => true,
            Some(stored) => self.live_besides_get(&stored),
            None => false,
        }
    }
}

impl Reference {
    /// The entry under `native` when it is there but expired: its expiry tick, and the TTL
    /// in ticks it was written with.
    fn expired(&self, native: &str) -> Option<(Option<u128>, Option<u128>)> {
        let state = self.lock();
        let stored = state
            .entries
            .get(native)
            .filter(|stored| !self.live(stored))?;
        Some((stored.expires, state.ttl_ticks.get(native).copied()))
    }

    /// For [`KeysDeletedAsGlobs`]: a key holding `*`, `?` or `[` also removes every
    /// entry whose key starts with what comes before that character.
    fn sweep_glob(&self, key: &str) {
        let Some(at) = key.find(['*', '?', '[']) else {
            return;
        };
        let prefix = &key[..at];
        if !prefix.is_empty() {
            self.lock()
                .entries
                .retain(|native, _| !native.starts_with(prefix));
        }
    }
}

fn truncate(key: &str, len: usize) -> String {
    let mut end = len.min(key.len());
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    key[..end].to_owned()
}

#[async_trait]
impl Cache for Reference {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.check_key(key, Op::Get)?;
        if self.has(ReadsCachedPerThread) {
            return Ok(self.near(key));
        }
        if self.has(ReadCopiesKeptWhileReadsAreUnderWay) {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let copy = self.copies.lock().unwrap().get(key).cloned();
            let value = copy.or_else(|| {
                let value = self.read(key, Path::Read)?;
                self.copies
                    .lock()
                    .unwrap()
                    .insert(key.to_owned(), value.clone());
                Some(value)
            });
            tokio::task::yield_now().await;
            self.reads.fetch_sub(1, Ordering::SeqCst);
            return Ok(value);
        }
        if self.has(MissReturnedAsError) && self.read(key, Path::Read).is_none() {
            return Err(backend_error("key not found"));
        }
        let value = self.read(key, Path::Read);
        Ok(match value {
            None if self.has(MissReturnedAsEmptyValue) => Some(Bytes::new()),
            other => other,
        })
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), CacheError> {
        // The copy is dropped only when no read is under way (when the lock is free).
        if self.has(ReadCopiesKeptWhileReadsAreUnderWay) && self.reads.load(Ordering::SeqCst) == 0 {
            self.copies.lock().unwrap().remove(key);
        }
        let op = match ttl {
            None => Op::SetNone,
            Some(ttl) if ttl.is_zero() => Op::SetZero,
            Some(_) => Op::SetTtl,
        };
        self.check_key(key, op)?;
        if self.has(OversizedUnderLongKeyIsABackendError)
            && key.len() > 250
            && value.len() > MAX_VALUE_SIZE
        {
            return Err(backend_error("item too large"));
        }
        if self.has(LongKeysShrinkTheValueLimit) && key.len() + value.len() > MAX_VALUE_SIZE + 250 {
            return Err(CacheError::ValueTooLarge {
                size: key.len() + value.len(),
                limit: MAX_VALUE_SIZE + 250,
            });
        }
        if let Err(err) = self.check_value(&value) {
            let mut state = self.lock();
            state.refused_a_value = true;
            if self.has(OversizedSetRemovesOldValue) {
                state.entries.remove(&self.key_for(key, Path::Write));
            }
            if self.has(OversizedSetEvictsOthers) {
                let kept = self.key_for(key, Path::Write);
                state.entries.retain(|native, _| *native == kept);
            }
            return Err(err);
        }
        self.forget_near(key);
        self.store(key, value, ttl, false).await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.check_key(key, Op::Delete)?;
        if self.has(DeleteOfNonAsciiKeyReportsFalse) && !key.is_ascii() && key.len() <= 250 {
            return Ok(false);
        }
        self.forget_near(key);
        {
            // Of `delete` alone: `delete_many` counts as it should.
            let mut state = self.lock();
            let native = self.key_for(key, Path::Delete);
            if (self.has(ZeroTtlLeavesDeleteTrue) && state.zeroed.remove(&native))
                || (self.has(ClearedKeysDeleteTrue) && state.cleared.remove(&native).is_some())
                || (self.has(SetManyZeroTtlLeavesTombstoneFor(Op::Delete))
                    && state.tombstones.remove(&native))
            {
                return Ok(true);
            }
        }
        let removed = self.remove(key);
        if self.has(KeysDeletedAsGlobs(Op::Delete)) {
            self.sweep_glob(key);
        }
        Ok(removed)
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        if keys.is_empty() {
            if self.has(EmptyGetManyIsAnError) {
                return Err(backend_error("wrong number of arguments"));
            }
            if self.has(EmptyGetManyAnswersOneMiss) {
                return Ok(vec![None]);
            }
        }
        if self.has(LoneEmptyKeyAcceptedByBatches) && keys == [""] {
            return Ok(vec![None]);
        }
        let long = keys.len() > SHORT_BATCH;
        if !(long && self.has(LongBatchesUnchecked(Op::GetMany))) {
            self.check_keys(keys.iter().copied(), Op::GetMany)?;
        }
        let mut values = Vec::new();
        let mut seen = HashSet::new();
        for key in keys {
            if self.has(GetManyDeduplicates) && !seen.insert(*key) {
                continue;
            }
            let mut value = self.read(key, Path::BulkRead);
            let state = self.lock();
            let native = self.key_for(key, Path::BulkRead);
            if value.is_none() {
                let fallback = if self.has(GetManySeesDeleted) {
                    state.deleted.get(&native)
                } else if self.has(ClearLeavesGetManyAnswers) {
                    state.cleared.get(&native)
                } else if self.has(GetManyIgnoresExpiry)
                    || (long && self.has(GetManyIgnoresExpiryInLongBatches))
                {
                    state.entries.get(&native)
                } else {
                    None
                };
                value = fallback.map(|stored| stored.value.clone());
            }
            if self.has(GetManyStaleAfterOverwrite) && value.is_some() {
                value = state.first_values.get(&native).cloned();
            }
            if self.has(GetManyReadsEmptyAsMiss) && value.as_ref().is_some_and(Bytes::is_empty) {
                value = None;
            }
            if self.has(GetManyMissesWhitespaceKeys) && key.chars().any(char::is_whitespace) {
                value = None;
            }
            drop(state);
            if let (Some(GetManyCutsValuesAt(most)), Some(found)) = (self.defect, &value) {
                value = Some(found.slice(..found.len().min(most)));
            }
            if value.is_some() || !self.has(GetManySkipsMisses) {
                values.push(value);
            }
        }
        if self.has(GetManyCapsAt100Answers) {
            values.truncate(100);
        }
        if self.has(BatchesCutAfter512(Op::GetMany)) {
            values.iter_mut().skip(512).for_each(|value| *value = None);
        }
        if self.has(GetManyMisordersLongBatches) && values.len() > 100 {
            values[100..].reverse();
        }
        if long && self.has(GetManyLosesEarlierDuplicatesInLongBatches) {
            // Answers kept by key: a key named again takes the answer of its last place.
            let last: HashMap<&str, usize> =
                keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
            for (i, key) in keys.iter().enumerate() {
                if last[key] != i {
                    values[i] = None;
                }
            }
        }
        Ok(values)
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        if entries.is_empty()
            && (self.has(EmptySetManyIsAnError) && ttl.is_none()
                || self.has(EmptySetManyWithTtlIsAnError) && ttl.is_some())
        {
            return Err(backend_error("wrong number of arguments"));
        }
        if self.has(LoneEmptyKeyAcceptedByBatches) && entries.len() == 1 && entries[0].0.is_empty()
        {
            return Ok(());
        }
        let long = entries.len() > SHORT_BATCH;
        let late_keys = self.has(SetManyWritesBeforeValidating)
            || (long && self.has(LongBatchesValidatedWhileWriting(Op::SetMany)));
        let late_sizes = self.has(SetManyWritesBeforeCheckingSizes)
            || (long && self.has(SetManyChecksSizesWhileWritingLongBatches));
        if !(late_keys || long && self.has(LongBatchesUnchecked(Op::SetMany))) {
            self.check_keys(entries.iter().map(|(key, _)| *key), Op::SetMany)?;
        }
        if let Some(SetManyRefusesKeysOver(len)) = self.defect {
            if entries.iter().any(|(key, _)| key.len() > len) {
                return Err(backend_error("key too long"));
            }
        }
        if !late_sizes && !self.has(SetManyAcceptsOversized) {
            for (_, value) in entries {
                self.check_value(value)?;
            }
        }
        let ttl = match ttl {
            _ if self.has(SetManyIgnoresTtl) => None,
            Some(ttl) if ttl.is_zero() && self.has(SetManyZeroTtlIgnored) => None,
            other => other,
        };
        if ttl == Some(Duration::MAX) {
            if self.has(SetManyMaxTtlIsABackendError) {
                return Err(backend_error("instant overflow"));
            }
            if self.has(SetManyMaxTtlWritesFirstThenRefuses) {
                if let Some((key, value)) = entries.first() {
                    self.store(key, value.clone(), ttl, true).await?;
                }
                return Err(CacheError::InvalidTtl {
                    ttl: Duration::MAX,
                    reason: "too long",
                });
            }
        }
        let mut written: Vec<&(&str, Bytes)> = entries.iter().collect();
        if self.has(SetManyStoresOnlyLastEntry) {
            written.drain(..written.len().saturating_sub(1));
        }
        if self.has(SetManyStoresFirstEight) {
            written.truncate(8);
        }
        if self.has(BatchesCutAfter512(Op::SetMany)) {
            written.truncate(512);
        }
        if self.has(SetManyMaxTtlDropsLastEntry) && ttl == Some(Duration::MAX) {
            written.pop();
        }
        if self.has(SetManyFirstValueWins) || (long && self.has(SetManyFirstValueWinsInLongBatches))
        {
            let mut seen = HashSet::new();
            written.retain(|(key, _)| seen.insert(*key));
        }
        if self.has(SetManyDropsNonAsciiKeys) {
            written.retain(|(key, _)| key.is_ascii());
        }
        if self.has(SetManySkipsEmptyValues) {
            written.retain(|(_, value)| !value.is_empty());
        }
        if let Some(SetManySkipsKeysOver(len)) = self.defect {
            written.retain(|(key, _)| key.len() <= len);
        }
        for (i, (key, value)) in written.into_iter().enumerate() {
            if late_keys {
                self.check_key(key, Op::SetMany)?;
            }
            if late_sizes {
                self.check_value(value)?;
            }
            let ttl = if (self.has(SetManyTtlOnlyOnFirstEntry) && i > 0)
                || (self.has(SetManyTtlOnlyOnFirstSixteen) && i >= SHORT_BATCH)
            {
                None
            } else if self.has(SetManyTtlsRoundedDown) {
                ttl.map(|ttl| Duration::from_secs(ttl.as_secs().max(1)))
            } else {
                ttl
            };
            self.store(key, value.clone(), ttl, true).await?;
        }
        if ttl.is_some_and(|ttl| ttl.is_zero())
            && [Op::Exists, Op::Delete, Op::DeleteMany]
                .iter()
                .any(|op| self.has(SetManyZeroTtlLeavesTombstoneFor(*op)))
        {
            let mut state = self.lock();
            for (key, _) in entries {
                state.tombstones.insert(self.key_for(key, Path::Write));
            }
        }
        if self.has(SetManyAppliesTtlToEveryLiveEntry) {
            if let Some(ttl) = ttl {
                let expires = self.expires(ttl)?;
                for stored in self.lock().entries.values_mut() {
                    if stored.expires.is_some() {
                        stored.expires = expires;
                    }
                }
            }
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<usize, CacheError> {
        if keys.is_empty() {
            if self.has(EmptyDeleteManyIsAnError) {
                return Err(backend_error("wrong number of arguments"));
            }
            if self.has(EmptyDeleteManyCountsOne) {
                return Ok(1);
            }
        }
        if self.has(LoneEmptyKeyAcceptedByBatches) && keys == [""] {
            return Ok(0);
        }
        let long = keys.len() > SHORT_BATCH;
        let late_keys = self.has(DeleteManyDeletesBeforeValidating)
            || (long && self.has(LongBatchesValidatedWhileWriting(Op::DeleteMany)));
        if !(late_keys || long && self.has(LongBatchesUnchecked(Op::DeleteMany))) {
            self.check_keys(keys.iter().copied(), Op::DeleteMany)?;
        }
        let ascii: Vec<&str>;
        let keys = if self.has(DeleteManySkipsNonAsciiKeys) {
            ascii = keys.iter().copied().filter(|key| key.is_ascii()).collect();
            &ascii[..]
        } else {
            keys
        };
        let keys = if self.has(DeleteManyStopsAtSixteen) {
            &keys[..keys.len().min(16)]
        } else if self.has(BatchesCutAfter512(Op::DeleteMany)) {
            &keys[..keys.len().min(512)]
        } else {
            keys
        };
        let last_live = keys
            .iter()
            .rposition(|key| self.read(key, Path::Read).is_some());
        let mut removed = 0;
        for (i, key) in keys.iter().enumerate() {
            if late_keys {
                self.check_key(key, Op::DeleteMany)?;
            }
            let native = self.key_for(key, Path::Delete);
            if self.has(DeleteManyLeavesWhitespaceKeys) && key.chars().any(char::is_whitespace) {
                removed += usize::from(self.read(key, Path::Read).is_some());
                continue;
            }
            let counted = {
                let state = self.lock();
                let stored = state.entries.get(&native);
                ((self.has(DeleteManyCountsExpired)
                    || (long && self.has(DeleteManyCountsExpiredInLongBatches)))
                    && stored.is_some())
                    || (self.has(ClearLeavesDeleteManyCounting)
                        && state.cleared.contains_key(&native))
            };
            let tombstone = self.has(SetManyZeroTtlLeavesTombstoneFor(Op::DeleteMany))
                && self.lock().tombstones.remove(&native);
            let empty = self.has(DeleteManyDoesNotCountEmptyValues)
                && self
                    .lock()
                    .entries
                    .get(&native)
                    .is_some_and(|stored| stored.value.is_empty());
            let was_there = if self.has(DeleteManyLeavesLastLiveKey) && Some(i) == last_live {
                true
            } else {
                self.remove(key) && !empty || tombstone
            };
            if was_there || counted || self.has(DeleteManyCountsEveryKeyNamed) {
                removed += 1;
            }
            if counted {
                self.lock().entries.remove(&native);
            }
        }
        if self.has(KeysDeletedAsGlobs(Op::DeleteMany)) {
            for key in keys {
                self.sweep_glob(key);
            }
        }
        if self.has(DeleteManyRemovesByPrefix) {
            let prefixes: Vec<String> = keys
                .iter()
                .map(|key| {
                    key.rsplit_once('-')
                        .map_or(*key, |(head, _)| head)
                        .to_owned()
                })
                .collect();
            self.lock()
                .entries
                .retain(|native, _| !prefixes.iter().any(|prefix| native.starts_with(prefix)));
        }
        Ok(removed)
    }

    async fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        if self.has(AddUnsupported) {
            return Err(CacheError::Unsupported { operation: "add" });
        }
        if self.has(DeclaresNoAddButStoresThenRefuses) {
            self.set(key, value, ttl).await?;
            return Err(CacheError::Unsupported { operation: "add" });
        }
        let truncated;
        let key = match self.defect {
            Some(AddTruncatesKeysTo(len)) => {
                truncated = truncate(key, len);
                truncated.as_str()
            }
            Some(AddFalseForKeysOver(len)) if key.len() > len => return Ok(false),
            _ => key,
        };
        {
            let state = self.lock();
            if (self.has(ZeroTtlLeavesAddFalse) && state.zeroed.contains(key))
                || (self.has(ClearedKeysRefuseAdd) && state.cleared.contains_key(key))
            {
                return Ok(false);
            }
        }
        let ttl = match ttl {
            None => match self.defect {
                Some(AddWithoutTtlGetsTtl(given)) => Some(given),
                _ => None,
            },
            Some(ttl) if self.has(AddTtlsRoundedDown) && ttl > SECOND => {
                Some(Duration::from_secs(ttl.as_secs()))
            }
            other => other,
        };
        if self.has(AddLargestValueRejected) && value.len() >= self.limits().max_value_size {
            return Err(CacheError::ValueTooLarge {
                size: value.len(),
                limit: self.limits().max_value_size,
            });
        }
        if self.has(PanicsOffTheCallerThread) && std::thread::current().name().is_none() {
            std::panic::panic_any(DELIBERATE_PANIC);
        }
        let zero = ttl.is_some_and(|ttl| ttl.is_zero());
        if zero && self.has(AddZeroTtlSkipsValidation) {
            return Ok(false);
        }
        self.check_key(key, Op::Add)?;
        let native = self.key_for(key, Path::Write);
        if self.has(AddChecksPresenceBeforeSize) && self.read(key, Path::Read).is_some() {
            return Ok(false);
        }
        let size_checked =
            !(self.has(AddOversizedAccepted) || zero && self.has(AddZeroTtlSkipsSizeCheck));
        if size_checked {
            if let Err(err) = self.check_value(&value) {
                let mut state = self.lock();
                if self.has(AddLeaksAClaimWhenRefused) {
                    state.claimed.insert(native.clone());
                }
                if self.has(AddOversizedRemovesOld) {
                    state.entries.remove(&native);
                }
                if self.has(AddOversizedStoresThenRefuses)
                    && !zero
                    && !state.entries.contains_key(&native)
                {
                    let stored = Stored {
                        value,
                        expires: None,
                        batch: false,
                    };
                    state.entries.insert(native, stored);
                }
                return Err(err);
            }
        }
        if self.has(AddLeaksAClaimWhenRefused) && self.lock().claimed.contains(&native) {
            return Ok(false);
        }
        if ttl.is_none() && self.has(AddRefusesWithoutTtl) {
            return Ok(false);
        }
        if ttl == Some(Duration::MAX) {
            if self.has(AddMaxTtlIsABackendError) {
                return Err(backend_error("instant overflow"));
            }
            if self.has(AddMaxTtlAcceptedButNothingStored) {
                return Ok(true);
            }
            if self.has(AddMaxTtlRefusedAfterStoring) {
                let stored = Stored {
                    value,
                    expires: None,
                    batch: false,
                };
                self.lock().entries.insert(native, stored);
                return Err(CacheError::InvalidTtl {
                    ttl: Duration::MAX,
                    reason: "too long",
                });
            }
        }
        if zero {
            if self.has(AddZeroTtlRemovesPresent) {
                self.lock().entries.remove(&native);
            }
            if self.has(AddZeroTtlReportsTrueOnPresent) && self.read(key, Path::Read).is_some() {
                return Ok(true);
            }
            if self.has(AddZeroTtlStoresButReportsFalse) {
                let stored = Stored {
                    value,
                    expires: None,
                    batch: false,
                };
                self.lock().entries.insert(native, stored);
                return Ok(false);
            }
            if !self.has(AddZeroTtlStores) {
                return Ok(false);
            }
        }
        let expires = match ttl {
            Some(ttl) if !ttl.is_zero() && !self.has(AddIgnoresTtl) => self.expires(ttl)?,
            None if self.has(AddNoneOverExpiredReusesOldTtl) => self
                .expired(&native)
                .and_then(|(_, ticks)| ticks)
                .map(|ticks| self.tick() + ticks),
            _ => None,
        };
        if self.has(AddGetThenSet) {
            // Read, let the others run, then write: every racer that read before the
            // first write thinks it won.
            let present = self.read(key, Path::Read).is_some();
            Self::pause().await;
            if present {
                return Ok(false);
            }
            let stored = Stored {
                value,
                expires,
                batch: false,
            };
            self.lock().entries.insert(native, stored);
            return Ok(true);
        }
        let mut state = self.lock();
        let current = state.entries.get(&native).cloned();
        let present = current.as_ref().is_some_and(|stored| {
            (self.live(stored) || self.has(AddKeepsExpiredEntry))
                && !(stored.value.is_empty() && self.has(AddCountsEmptyValueAsAbsent))
                && !(stored.batch && self.has(AddSeesBatchEntriesAsAbsent))
        }) && !(self.has(AddReadsLeftoverDeadline)
            && state
                .deadlines
                .get(&native)
                .is_some_and(|deadline| self.tick() >= *deadline))
            || (self.has(AddRefusedAfterDelete) && state.deleted.contains_key(&native));
        if let (true, Some(stored)) = (present, current) {
            if self.has(AddOfTheSameValueStores) && stored.value == value {
                state.entries.insert(
                    native,
                    Stored {
                        value,
                        expires,
                        batch: false,
                    },
                );
                return Ok(true);
            }
            let shorter = expires < stored.expires;
            // Longer by far: two writes with the same TTL a tick apart do not count.
            let ten_seconds = Duration::from_secs(10).as_nanos() / self.granularity.as_nanos();
            let much_longer = match (expires, stored.expires) {
                (Some(theirs), Some(ours)) => theirs > ours + ten_seconds,
                _ => false,
            };
            if (shorter && self.has(AddTrueWhenItsTtlIsShorter))
                || (much_longer && self.has(AddTrueWhenItsTtlIsLonger))
            {
                return Ok(true);
            }
            if much_longer && self.has(AddDropsEntryWhenItsTtlIsLonger) {
                state.entries.remove(&native);
                return Ok(false);
            }
            let kept = if self.has(AddOverwrites)
                || (shorter && self.has(AddOverwritesWhenItsTtlIsShorter))
            {
                Stored { value, ..stored }
            } else if (self.has(AddExtendsTtlOfPresent) && expires > stored.expires)
                || (self.has(AddShortensTtlOfPresent) && expires < stored.expires)
                || (self.has(RefusedAddWithoutTtlPersists) && ttl.is_none())
            {
                Stored { expires, ..stored }
            } else {
                stored
            };
            state.entries.insert(native, kept);
            return Ok(self.has(AddAlwaysTrue));
        }
        if present {
            return Ok(self.has(AddAlwaysTrue));
        }
        if self.has(AddReturnsTrueWithoutStoring)
            || (self.has(AddStoresEmptyValuesAsNothing) && value.is_empty())
        {
            return Ok(true);
        }
        let value = match state.deleted.get(&native) {
            Some(deleted) if self.has(AddResurrectsDeletedValue) => deleted.value.clone(),
            _ => value,
        };
        state.ever_written.insert(native.clone());
        state.added.insert(native.clone());
        state.clear_is_clean = false;
        state
            .first_values
            .entry(native.clone())
            .or_insert_with(|| value.clone());
        state.entries.insert(
            native,
            Stored {
                value,
                expires,
                batch: false,
            },
        );
        Ok(!self.has(AddAlwaysFalse))
    }

    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        self.check_key(key, Op::Exists)?;
        if matches!(self.defect, Some(ExistsFalseForKeysOver(len)) if key.len() > len) {
            return Ok(false);
        }
        if self.has(ExistsAlwaysFalse) {
            return Ok(false);
        }
        if self.has(ExistsAlwaysTrue) {
            return Ok(true);
        }
        let native = self.key_for(key, Path::Read);
        let state = self.lock();
        let stored = state.entries.get(&native);
        let live = stored.is_some_and(|stored| {
            (self.live_besides_get(stored) || self.has(ExistsIgnoresExpiry))
                && !(stored.value.is_empty() && self.has(ExistsFalseForEmptyValue))
        });
        Ok(live
            || (self.has(ZeroTtlLeavesExistsTrue) && state.zeroed.contains(&native))
            || (self.has(SetManyZeroTtlLeavesTombstoneFor(Op::Exists))
                && state.tombstones.contains(&native))
            || (self.has(ExistsSeesDeletedEntries) && state.deleted.contains_key(&native))
            || (self.has(ClearLeavesExistsTrue) && state.cleared.contains_key(&native)))
    }

    async fn clear(&self) -> Result<(), CacheError> {
        if self.has(DeclaresNoClearButIgnoresIt) {
            return Ok(());
        }
        let mut state = self.lock();
        if self.has(ClearUnsupported) {
            return Err(CacheError::Unsupported { operation: "clear" });
        }
        if self.has(ClearFailsOnEmptyCache) && state.entries.is_empty() {
            return Err(backend_error("nothing to clear"));
        }
        if self.has(ClearFailsWhenAlreadyClear) && state.clear_is_clean {
            return Err(backend_error("nothing to clear"));
        }
        state.cleared_once = true;
        state.clear_is_clean = true;
        if self.has(ClearDoesNothing) {
            return Ok(());
        }
        if self.has(DeclaresNoClearButClearsThenRefuses) {
            state.entries.clear();
            return Err(CacheError::Unsupported { operation: "clear" });
        }
        let added = std::mem::take(&mut state.added);
        let mut walked = 0;
        let kept: HashMap<String, Stored> = std::mem::take(&mut state.entries)
            .into_iter()
            .filter(|(native, stored)| {
                walked += 1;
                let keep = matches!(self.defect, Some(ClearStopsAfter(most)) if walked > most)
                    || (self.has(ClearSkipsGlobLikeKeys) && native.contains('*'))
                    || (self.has(ClearKeepsKeysWithoutColon) && !native.contains(':'))
                    || (self.has(ClearSkipsBatchWrites) && stored.batch)
                    || (self.has(ClearSkipsLongKeys) && native.len() > 250)
                    || (self.has(ClearSkipsNonAsciiKeys) && !native.is_ascii())
                    || (self.has(ClearSkipsAddedEntries) && added.contains(native))
                    || (self.has(ClearSparesLongLivedEntries)
                        && stored.expires.is_some_and(|tick| {
                            tick.saturating_sub(self.tick()) * self.granularity.as_nanos()
                                > Duration::from_secs(24 * 3600).as_nanos()
                        }))
                    || (self.has(ClearKeepsEntriesOfShortTtls)
                        && stored.expires.is_some_and(|tick| {
                            tick.saturating_sub(self.tick()) * self.granularity.as_nanos()
                                < Duration::from_secs(10).as_nanos()
                        }));
                if !keep {
                    state.cleared.insert(native.clone(), stored.clone());
                }
                keep
            })
            .collect();
        state.entries = kept;
        Ok(())
    }

    fn limits(&self) -> Limits {
        let granularity = if self.has(DeclaresCoarseGranularity) {
            2 * SECOND
        } else if self.has(DeclaresEndlessGranularity) {
            Duration::MAX
        } else {
            self.granularity
        };
        let max_value_size = if self.has(DeclaresTinyMaxValueSize) {
            64 << 10
        } else if self.has(DeclaresHugeMaxValueSize) {
            usize::MAX
        } else {
            MAX_VALUE_SIZE
        };
        // Declares every optional operation, so that the checks of each run and a
        // defect in one is caught; but for the defects of declaring less than it does.
        let limits = Limits::new(granularity, max_value_size);
        let limits = if self.has(DeclaresNoClearButIgnoresIt)
            || self.has(DeclaresNoClearButClearsThenRefuses)
        {
            limits
        } else {
            limits.with_clear()
        };
        if self.has(DeclaresNoAddButAdds) || self.has(DeclaresNoAddButStoresThenRefuses) {
            limits
        } else {
            limits.with_atomic_add()
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs each check on a fresh reference with the given defect, each in a task of its
/// own: the parallel check blocks its task while its threads run, and checks polled by
/// that same task would oversleep, letting a TTL a little too long go unseen.
fn run_each(
    runs: impl Iterator<Item = (&'static cache_tck::Check, Option<Defect>, Clock)>,
) -> Vec<cache_tck::Outcome> {
    runtime().block_on(async {
        let tasks: Vec<_> = runs
            .map(|(check, defect, clock)| {
                tokio::spawn(async move {
                    let cache = Reference::new(defect, clock);
                    run_check(check, &cache).await
                })
            })
            .collect();
        join_all(tasks)
            .await
            .into_iter()
            .map(|joined| joined.expect("run_check panicked"))
            .collect()
    })
}

const DELIBERATE_PANIC: &str = "the reference cannot be used from an unnamed thread";

/// Keeps the panics of [`PanicsOffTheCallerThread`], which the parallel check must
/// catch, and of [`LongKeysSlicedAtByte200`], which the check of long keys must catch,
/// out of the test output; every other panic is reported as usual.
fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let deliberate = info.payload().downcast_ref::<&str>() == Some(&DELIBERATE_PANIC)
                // The slicing of [`LongKeysSlicedAtByte200`], which the check catches.
                || info
                    .payload()
                    .downcast_ref::<String>()
                    .is_some_and(|message| message.contains("is not a char boundary"));
            if !deliberate {
                report(info);
            }
        }));
    });
}

fn honest_reference_passes_every_check(clock: Clock) {
    let outcomes = run_each(CHECKS.iter().map(|check| (check, None, clock)));
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.result
                .as_ref()
                .err()
                .map(|f| format!("{}: {f}", o.check.name))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "the honest backend ({clock:?} clock) failed:\n{}",
        failed.join("\n")
    );
    assert_eq!(outcomes.len(), CHECKS.len());
}

/// The honest reference with a 1 ms clock passes every check: the checks ask nothing
/// the contract does not.
#[test]
fn honest_reference_passes_every_check_on_a_fine_clock() {
    honest_reference_passes_every_check(Fine);
}

/// The honest reference with a 1 s clock that ticks on its own (like memcached's, an
/// entry may go up to a second early) passes every check too, coarse branches included.
#[test]
fn honest_reference_passes_every_check_on_a_coarse_clock() {
    honest_reference_passes_every_check(Coarse);
}

/// Every broken backend fails the check named for it, at the step named for it, with a
/// message saying what was done, what was expected and what came back.
#[test]
fn each_defect_fails_the_check_and_step_named_for_it() {
    quiet_deliberate_panics();
    let run = |cases: &[&'static Case]| {
        run_each(cases.iter().map(|case| {
            let check =
                check_named(case.check).unwrap_or_else(|| panic!("no check named {}", case.check));
            (check, Some(case.defect), case.clock)
        }))
    };
    // Hundreds of checks run at once here, sleeping for their TTLs: on a loaded machine
    // a defect of timing (an entry that expires 90 ms late) can pass a run whose waits
    // woke late. A case not caught where expected runs again, with only the others
    // not caught beside it, up to twice more, before it counts as missed.
    let mut pending: Vec<&'static Case> = CASES.iter().collect();
    let mut wrong = Vec::new();
    for attempt in 1..=3 {
        let outcomes = run(&pending);
        wrong = pending
            .iter()
            .zip(&outcomes)
            .filter_map(|(case, outcome)| Some((*case, not_caught_as_named(case, outcome)?)))
            .collect::<Vec<_>>();
        if wrong.is_empty() || attempt == 3 {
            break;
        }
        pending = wrong.iter().map(|(case, _)| *case).collect();
    }
    assert!(
        wrong.is_empty(),
        "defects not caught where expected (in three runs):\n{}",
        wrong
            .iter()
            .map(|(_, why)| why.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Why `outcome` is not `case`'s defect caught at its check and step; `None` when it is.
fn not_caught_as_named(case: &Case, outcome: &cache_tck::Outcome) -> Option<String> {
    let name = format!(
        "{:?} ({:?} clock) on {}",
        case.defect, case.clock, case.check
    );
    let failure = match &outcome.result {
        Ok(_) => return Some(format!("{name}: passed or not applicable")),
        Err(failure) => failure,
    };
    let text = failure.to_string();
    if failure.step.is_empty() || failure.expected.is_empty() || failure.actual.is_empty() {
        return Some(format!(
            "{name}: the failure does not say what was done, expected and got: {failure:?}"
        ));
    }
    case.step
        .iter()
        .find(|fragment| !text.contains(*fragment))
        .map(|missing| format!("{name}: failed elsewhere than at {missing:?}: {text}"))
}

/// A limit no check can run on (a TTL granularity of `Duration::MAX`, a largest value
/// of `usize::MAX`) fails every check that reads it, naming the limit, rather than
/// overflowing a clock, allocating the value or sleeping out the check's timeout (whose
/// failure would not name it); the checks that do not read it still pass.
#[test]
fn limits_no_check_can_run_on_fail_the_checks_that_read_them() {
    let cases = [
        (
            DeclaresEndlessGranularity,
            "limits().ttl_granularity",
            &[
                "test_key_expires_after_ttl",
                "test_ttl_below_granularity_is_rounded_up",
            ][..],
        ),
        (
            DeclaresHugeMaxValueSize,
            "limits().max_value_size",
            &[
                "test_largest_value_round_trips",
                "test_value_over_limit_is_rejected_and_harms_nothing",
            ],
        ),
    ];
    for (defect, limit, must_fail) in cases {
        let outcomes = run_each(CHECKS.iter().map(|check| (check, Some(defect), Fine)));
        let mut failed = Vec::new();
        for outcome in &outcomes {
            if let Err(failure) = &outcome.result {
                let text = failure.to_string();
                assert!(
                    text.contains(limit),
                    "{defect:?}: {} failed without naming {limit}: {text}",
                    outcome.check.name
                );
                failed.push(outcome.check.name);
            }
        }
        for name in must_fail
            .iter()
            .chain(&["test_declared_limits_are_within_the_contract"])
        {
            assert!(failed.contains(name), "{defect:?}: {name} did not fail");
        }
        for name in [
            "test_set_and_get_value_without_ttl",
            "test_get_non_existent_key_is_a_cache_miss",
        ] {
            assert!(
                !failed.contains(&name),
                "{defect:?}: {name}, which reads no limit, failed"
            );
        }
    }
}

/// Every check is failed by some defect, so none of them is a check that cannot fail.
#[test]
fn every_check_is_exercised_by_some_defect() {
    let untested: Vec<&str> = CHECKS
        .iter()
        .map(|check| check.name)
        .filter(|name| !CASES.iter().any(|case| case.check == *name))
        .collect();
    assert!(
        untested.is_empty(),
        "checks no defect exercises: {untested:?}"
    );
}

/// The parallel checks need threads of a multi-thread runtime; on a current-thread one
/// they fail, saying so, rather than passing without having run their writers.
#[test]
fn parallel_check_fails_on_a_current_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for name in [
        "test_parallel_writers_on_many_threads_lose_no_write",
        "test_parallel_adds_on_many_threads_have_exactly_one_winner",
    ] {
        let check = check_named(name).unwrap();
        let outcome = runtime.block_on(run_check(check, &Reference::new(None, Fine)));
        let failure = outcome
            .result
            .expect_err("the check passed on a current-thread runtime");
        assert!(
            failure.expected.contains("multi-thread tokio runtime")
                && failure.actual.contains("CurrentThread"),
            "{name}: {failure}"
        );
    }
}
